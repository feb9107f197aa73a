package sim

import "github.com/erpsync/erpsync-operator/connectors/simkit"

// Xero's deletion markers, as a user sets them (each is announced to the
// app's webhook as an UPDATE, as Xero does): a contact is archived
// (ContactStatus ARCHIVED; Xero has no way to delete a contact), a draft
// invoice or credit note is deleted (Status DELETED) and an approved one
// voided (Status VOIDED). Items are deleted outright (they vanish from
// /Items) and tax rates are served whole, so neither needs a marker here.
//
// Whether Xero moves UpdatedDateUTC when it sets a marker is not
// documented. Xero's webhooks deliver an archived contact as an UPDATE
// event, and a status change is made through the same update call as any
// edit, so the simulator stamps the record modified by default (stamp
// true); stamp false plays a vendor that sets the marker and keeps the old
// UpdatedDateUTC, which no If-Modified-Since read and no id listing can
// see (see docs/connectors/xero.md, Deletions).

// ArchiveContact archives the customer or supplier with the contact id
// id, stamping it modified when stamp is set; false when there is none.
func (s *Server) ArchiveContact(id string, stamp bool) bool {
	found := false
	s.data.Update(func(d *simkit.Dataset) {
		mark := func(kind string, m *simkit.Meta) {
			m.Deleted, found = true, true
			if stamp {
				m.Modified = d.Stamp()
			}
			d.Notify(kind, m.ID, simkit.ChangeDeleted)
		}
		for _, c := range d.Customers {
			if c.ID == id {
				mark(simkit.AdminCustomers, &c.Meta)
			}
		}
		for _, sp := range d.Suppliers {
			if sp.ID == id {
				mark(simkit.AdminSuppliers, &sp.Meta)
			}
		}
	})
	return found
}

// VoidDocument marks the sales invoice or credit note with the id id gone:
// DELETED while it is a draft, VOIDED once approved (docStatus), stamping
// it modified when stamp is set. It returns the status Xero now serves, or
// "" when there is no such document.
func (s *Server) VoidDocument(id string, stamp bool) string {
	st := ""
	s.data.Update(func(d *simkit.Dataset) {
		for kind, list := range map[string][]*simkit.Document{simkit.AdminInvoices: d.Invoices, simkit.AdminCreditNotes: d.CreditNotes} {
			for _, doc := range list {
				if doc.ID != id {
					continue
				}
				doc.Deleted = true
				if stamp {
					doc.Modified = d.Stamp()
				}
				st = docStatus(doc)
				d.Notify(kind, doc.ID, simkit.ChangeDeleted)
			}
		}
	})
	return st
}
