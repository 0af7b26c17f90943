"""Every query of webhook_endpoint (the endpoints' calls); only this module runs them."""
