-- Version 2: typed columns for the product barcode and the customer tax
-- number, filled from the stored canonical payload, and the indexes a CRM
-- looks records up by. Adds only; nothing is dropped or rewritten.

ALTER TABLE products ADD COLUMN barcode text;
UPDATE products SET barcode = NULLIF(data->>'barcode', '') WHERE data ? 'barcode';

ALTER TABLE customers ADD COLUMN tax_number text;
UPDATE customers SET tax_number = NULLIF(data->>'taxNumber', '') WHERE data ? 'taxNumber';

CREATE INDEX products_company_sku_idx ON products (company, sku);
CREATE INDEX stock_levels_company_sku_idx ON stock_levels (company, sku, warehouse);
CREATE INDEX price_rules_company_sku_idx ON price_rules (company, sku);
CREATE INDEX customers_company_code_idx ON customers (company, code);
CREATE INDEX suppliers_company_code_idx ON suppliers (company, code);
CREATE INDEX contacts_company_customer_idx ON contacts (company, customer_vendor_id);
CREATE INDEX sales_orders_company_number_idx ON sales_orders (company, number);
CREATE INDEX invoices_company_number_idx ON invoices (company, number);
CREATE INDEX credit_notes_company_number_idx ON credit_notes (company, number);
CREATE INDEX shipments_company_number_idx ON shipments (company, number);
