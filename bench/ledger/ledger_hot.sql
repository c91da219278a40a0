SELECT allowed FROM ama.rate_limit('bench', 'ip:hot');
