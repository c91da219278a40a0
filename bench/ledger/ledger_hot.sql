SELECT allowed FROM ama.rate_limit('bench', 'hot-ip');
