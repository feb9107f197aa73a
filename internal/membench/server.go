package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// apiPath is the root of Xero's Accounting API under the server's URL.
const apiPath = "/api.xro/2.0"

// pageDocs is Xero's largest page (connectors/xero PageSize).
const pageDocs = 1000

// runServer answers as Xero's identity and Accounting API would for the
// benchmark: any refresh token gets an access token, and every Contacts
// page is the same maximal page of size bytes. It prints "LISTEN <addr>"
// and serves until its standard input closes.
func runServer(size int64) error {
	page, err := contactsPage(size)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	mux := handler(page)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// handler serves the token endpoint and page as every Contacts page.
func handler(page []byte) http.Handler {
	mux := http.NewServeMux()
	var tokens atomic.Int64
	mux.HandleFunc("POST /connect/token", func(w http.ResponseWriter, r *http.Request) {
		n := tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"bench-access-%d","refresh_token":"bench-refresh-%d","expires_in":1800,"token_type":"Bearer"}`, n, n)
	})
	mux.HandleFunc("GET "+apiPath+"/Contacts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		// Written in pieces without a Content-Length: chunked, so the
		// client learns the size only at the end.
		for b := page; len(b) > 0; {
			k := min(len(b), 64<<10)
			if _, err := w.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
	})
	return mux
}

// contactsPage builds a Contacts page of pageDocs documents whose length is
// size less a 4 KiB margin (never over size). Each document carries what
// Xero allows at most of the fields the connector maps (a 255-character
// name, two addresses of four 500-character lines, four phones, five
// contact persons), and the rest of its share of the page in a field the
// connector does not map but keeps in the record's raw document.
func contactsPage(size int64) ([]byte, error) {
	const margin = 4 << 10
	head := `{"Id":"membench","Status":"OK","ProviderName":"membench","DateTimeUTC":"/Date(1767225600000)/",` +
		fmt.Sprintf(`"pagination":{"page":1,"pageSize":%d,"pageCount":1,"itemCount":%d},"Contacts":[`, pageDocs, pageDocs)
	tail := `]}`
	per := (size - margin - int64(len(head)+len(tail)) - (pageDocs - 1)) / pageDocs
	var buf bytes.Buffer
	buf.Grow(int(size))
	buf.WriteString(head)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range pageDocs {
		if i > 0 {
			buf.WriteByte(',')
		}
		doc, err := contactDoc(i, base.Add(time.Duration(i)*time.Second), per)
		if err != nil {
			return nil, err
		}
		buf.Write(doc)
	}
	buf.WriteString(tail)
	if int64(buf.Len()) > size {
		return nil, fmt.Errorf("the page is %d bytes, over %d", buf.Len(), size)
	}
	if !json.Valid(buf.Bytes()) {
		return nil, fmt.Errorf("the page is not JSON")
	}
	return buf.Bytes(), nil
}

type address struct {
	AddressType  string
	AddressLine1 string
	AddressLine2 string
	AddressLine3 string
	AddressLine4 string
	City         string
	Region       string
	PostalCode   string
	Country      string
}

type phone struct {
	PhoneType, PhoneNumber, PhoneAreaCode, PhoneCountryCode string
}

type person struct {
	FirstName, LastName, EmailAddress string
	IncludeInEmails                   bool
}

type contact struct {
	ContactID       string
	ContactNumber   string
	AccountNumber   string
	ContactStatus   string
	Name            string
	FirstName       string
	LastName        string
	EmailAddress    string
	TaxNumber       string
	Addresses       []address
	Phones          []phone
	ContactPersons  []person
	IsSupplier      bool
	IsCustomer      bool
	DefaultCurrency string
	UpdatedDateUTC  string
	Notes           string
}

// contactDoc returns contact i, padded to exactly size bytes.
func contactDoc(i int, updated time.Time, size int64) ([]byte, error) {
	line := func(tag string) string { return fmt.Sprintf("%s %06d ", tag, i) + strings.Repeat("x", 500-len(tag)-8) }
	addr := func(typ string) address {
		return address{AddressType: typ, AddressLine1: line("l1"), AddressLine2: line("l2"), AddressLine3: line("l3"), AddressLine4: line("l4"),
			City: strings.Repeat("c", 255), Region: strings.Repeat("r", 255), PostalCode: strings.Repeat("9", 50), Country: strings.Repeat("n", 50)}
	}
	c := contact{
		ContactID:     fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		ContactNumber: fmt.Sprintf("C%06d", i), AccountNumber: fmt.Sprintf("A%06d", i), ContactStatus: "ACTIVE",
		Name: fmt.Sprintf("%06d ", i) + strings.Repeat("N", 248), FirstName: strings.Repeat("F", 255), LastName: strings.Repeat("L", 255),
		EmailAddress: strings.Repeat("e", 240) + "@example.com", TaxNumber: strings.Repeat("T", 50),
		Addresses:       []address{addr("POBOX"), addr("STREET")},
		IsCustomer:      true,
		IsSupplier:      i%2 == 0,
		DefaultCurrency: "NZD",
		UpdatedDateUTC:  fmt.Sprintf("/Date(%d+0000)/", updated.UnixMilli()),
	}
	for _, t := range []string{"DEFAULT", "DDI", "MOBILE", "FAX"} {
		c.Phones = append(c.Phones, phone{PhoneType: t, PhoneNumber: strings.Repeat("5", 50), PhoneAreaCode: strings.Repeat("0", 10), PhoneCountryCode: strings.Repeat("6", 20)})
	}
	for p := range 5 {
		c.ContactPersons = append(c.ContactPersons, person{FirstName: fmt.Sprintf("P%d", p) + strings.Repeat("f", 253), LastName: strings.Repeat("l", 255),
			EmailAddress: strings.Repeat("p", 240) + "@example.com", IncludeInEmails: true})
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	pad := size - int64(len(b))
	if pad < 0 {
		return nil, fmt.Errorf("a document needs %d bytes, more than its share %d of the page", len(b), size)
	}
	c.Notes = strings.Repeat("z", int(pad))
	b, err = json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("document %d is %d bytes, want %d", i, len(b), size)
	}
	return b, nil
}
