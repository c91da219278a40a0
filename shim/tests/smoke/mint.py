import hmac,hashlib,base64,json,time,sys
def b(x): return base64.urlsafe_b64encode(x).rstrip(b'=').decode()
now=int(time.time())
h=b(json.dumps({"alg":"HS256","typ":"JWT"}).encode()); c=b(json.dumps({"sub":sys.argv[1],"aud":"authenticated","iat":now,"exp":now+600}).encode())
s=b(hmac.new(b'x'*40,(h+'.'+c).encode(),hashlib.sha256).digest())
print(h+'.'+c+'.'+s)
