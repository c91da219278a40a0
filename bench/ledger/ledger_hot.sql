SELECT (ama.rate_limit('bench', 'hot-ip')).allowed;
