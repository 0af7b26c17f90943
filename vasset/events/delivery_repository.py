"""Every query of webhook_delivery (claims, leases, outcomes); only this module runs them."""
