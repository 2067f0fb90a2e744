"""Shop services: carts (customers, orders and CRM arrive with the orders issue)."""
