create role authenticator login password 'authpw';
create schema ama;
create table ama.ev(thread_id uuid, seq bigint, content text);
create table ama.revoked(sub text);
create function ama.request(route text, kind text, cred text, claims jsonb, ip inet, args jsonb) returns jsonb
language plpgsql security definer as $$
declare evs jsonb; lim int;
begin
  if route = 'threads.get' then
    if (args->'path'->>'thread_id') !~ '^[0-9a-f-]{36}$' then
      raise exception 'thread_id: invalid UUID' using errcode = '22023';
    end if;
    return jsonb_build_object('status',200,'body',jsonb_build_object('route',route,'kind',kind,'cred',cred,'claims',claims,'ip',host(ip),'args',args),
      'rate',jsonb_build_object('policy','thread_read','limit',300,'remaining',299,'reset',1,'retry_after',0,'window',60),'principal','user:'||coalesce(claims->>'sub','anon'));
  elsif route = 'threads.create' then
    return jsonb_build_object('status',429,'body',jsonb_build_object('code','RATE_LIMITED','message','slow down'),
      'rate',jsonb_build_object('policy','thread_write','limit',60,'remaining',0,'reset',60,'retry_after',3,'window',60),'principal',null);
  elsif route = 'events.poll' then
    if exists (select 1 from ama.revoked where sub = claims->>'sub') then
      return jsonb_build_object('status',401,'body',jsonb_build_object('code','UNAUTHORIZED','message','invalid or expired credential'),'rate',null,'principal',null);
    end if;
    lim := coalesce((args->'query'->>'limit')::int, 50);
    select coalesce(jsonb_agg(jsonb_build_object('thread_seq',seq,'event_type','message_committed','content',content) order by seq), '[]') into evs
      from (select * from ama.ev where thread_id = (args->'path'->>'thread_id')::uuid
            and seq > coalesce((args->'query'->>'after_seq')::bigint, 0) order by seq limit lim) s;
    return jsonb_build_object('status',200,'body',jsonb_build_object('events',evs,'has_more', jsonb_array_length(evs) = lim),'rate',null,'principal','user:'||(claims->>'sub'));
  elsif route = 'threads.list' then
    perform pg_sleep(10);
    return jsonb_build_object('status',200,'body','[]'::jsonb);
  else
    raise exception 'secret internal detail' using errcode = 'XX000';
  end if;
end $$;
revoke all on function ama.request from public;
grant usage on schema ama to authenticator;
grant execute on function ama.request to authenticator;
create function ama.add(t uuid, n int) returns void language plpgsql as $$
declare s bigint;
begin
  for i in 1..n loop
    select coalesce(max(seq),0)+1 into s from ama.ev where thread_id = t;
    insert into ama.ev values (t, s, 'msg '||s);
    perform pg_notify('ama_events', t::text || ':' || s);
  end loop;
end $$;
