"""Default field rules, created by migration 0003; stewards and the sync config change them.

Consent comes only from the consent platform (cmp), billing addresses
preferably from the ERP; for contact data the CRM outranks the shop, which
outranks the support desk.
"""

DEFAULT_RULES = {
    "email": ("source_priority", ["crm", "shop", "support"]),
    "phone": ("source_priority", ["crm", "shop", "support", "erp"]),
    "first_name": ("source_priority", ["crm", "erp", "shop", "support"]),
    "last_name": ("source_priority", ["crm", "erp", "shop", "support"]),
    "locale": ("source_priority", ["crm", "shop", "support"]),
    "addresses.billing": ("source_priority", ["erp", "crm", "shop"]),
    "addresses.shipping": ("source_priority", ["shop", "crm", "erp"]),
    "marketing_opt_in": ("last_write_wins", ["cmp"]),
}
