package kubectlplugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// Output formats.
const (
	OutputTable = ""
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// checkOutput rejects an unknown -o value.
func checkOutput(o string) error {
	switch o {
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use json or yaml, or leave -o out for a table", o)
}

// printData writes v as JSON or YAML.
func printData(w io.Writer, format string, v any) error {
	switch format {
	case OutputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return checkOutput(format)
}

// RenderSummaries writes the listing: one line per ErpSync, in the order
// given (SortSummaries first). withNamespace adds the NAMESPACE column.
func RenderSummaries(w io.Writer, list []Summary, withNamespace bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "NAME\tCOMPANY\tCONNECTOR\tREADY\tREASON\tPHASE\tLAST SUCCESS\tNEXT SYNC\tRECORDS\tCALLS\tATTENTION"
	if withNamespace {
		head = "NAMESPACE\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, s := range list {
		att := s.Attention.String()
		if s.Why != "" {
			att += ": " + s.Why
		}
		row := []string{s.Name, dash(s.Company), dash(s.Connector), dash(s.Ready), dash(s.Reason), dash(s.Phase),
			relative(s.LastSuccess, now), relative(s.NextSync, now), optInt(s.Records), optInt(s.APICalls), att}
		if withNamespace {
			row = append([]string{s.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// RenderStatus writes one ErpSync's state for people.
func RenderStatus(w io.Writer, v *StatusView, now time.Time) error {
	o := v.ErpSync
	st := &o.Status
	s := v.Summary
	p := &printer{w: w}
	p.line("ErpSync %s/%s  company %s  connector %s", o.Namespace, o.Name, o.Spec.CompanyID, o.Spec.Connector.Type)
	ready := s.Ready
	if s.Reason != "" {
		ready += " (" + s.Reason + ")"
	}
	p.line("Ready:        %s", ready)
	for _, c := range st.Conditions {
		if c.Type == "Ready" && c.Message != "" {
			p.line("Message:      %s", oneLine(c.Message))
		}
	}
	for _, c := range st.Conditions {
		if c.Type != "Ready" {
			p.line("Condition:    %s=%s %s %s", c.Type, c.Status, c.Reason, oneLine(c.Message))
		}
	}
	phase := dash(string(st.Phase))
	if o.Spec.Suspend {
		phase += " (spec.suspend: true)"
	}
	p.line("Phase:        %s", phase)
	att := s.Attention.String()
	if s.Why != "" {
		att += ": " + s.Why
	}
	p.line("Attention:    %s", att)
	p.line("Interval:     %s", o.GetInterval())
	p.line("Last sync:    %s (ended %s)", lastSync(st.LastSync), relative(timePtr(st.LastSyncEnd), now))
	p.line("Last success: %s", relative(timePtr(st.LastSuccessfulSyncEnd), now))
	if st.NextSyncAt != nil {
		p.line("Next sync:    %s (%s)", st.NextSyncAt.UTC().Format(time.RFC3339), relative(timePtr(st.NextSyncAt), now))
	} else {
		p.line("Next sync:    -")
	}
	if st.ConsecutiveFailures > 0 {
		p.line("Failures:     %d in a row", st.ConsecutiveFailures)
	}
	if pr := st.Progress; pr != nil {
		p.line("Running:      entity %s, %d records, %d API calls so far", dash(pr.Entity), pr.Records, pr.APICalls)
	}
	if im := st.Import; im != nil {
		p.line("Import:       since %s (%s): %d syncs, %d records, %d API calls so far", im.StartedAt.UTC().Format(time.RFC3339), dash(im.Reason), im.Syncs, im.Records, im.APICalls)
	}
	if r := st.Reconciliation; r != nil {
		p.line("Reconcile:    last completed %s, next %s%s", relative(timePtr(r.LastCompleted), now), relative(timePtr(r.NextAt), now), inProgress(r.InProgress))
		if r.Message != "" {
			p.line("              %s", oneLine(r.Message))
		}
	}
	p.line("")
	p.entities(st.Entities, now)
	p.webhooks(st.Webhooks, now)
	p.quotas(v.Quotas, v.QuotaNote, now)
	p.events(v.Events, v.EventsNote, now)
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) table(rows [][]string) {
	if p.err != nil {
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	p.err = tw.Flush()
}

func (p *printer) entities(list []erpsyncv1.EntityStatus, now time.Time) {
	p.line("Entities:")
	if len(list) == 0 {
		p.line("  none yet")
		p.line("")
		return
	}
	rows := [][]string{{"ENTITY", "MODE", "RECORDS", "CALLS", "WATERMARK", "COMPLETED", "CHECKPOINT", "NOTES"}}
	for _, e := range list {
		rows = append(rows, []string{e.Name, dash(string(e.LastRunMode)), strconv.FormatInt(e.LastRunRecords, 10),
			strconv.FormatInt(e.LastRunCalls, 10), stamp(e.Watermark), relative(timePtr(e.LastCompleted), now),
			checkpoint(e.Checkpoint), entityNotes(&e)})
	}
	p.table(rows)
	// Drift and deletions only where the status has them.
	var drift [][]string
	for _, e := range list {
		if r := e.Reconcile; r != nil {
			note := ""
			if r.Postponed {
				note = "postponed"
			}
			if r.Message != "" {
				note = strings.TrimSpace(note + " " + oneLine(r.Message))
			}
			drift = append(drift, []string{e.Name, relative(timePtr(&r.Time), now), n(r.Listed), n(r.Live), n(r.Missing),
				n(r.Deleted), n(r.Absent), n(r.Drifted), n(r.Repaired), n(r.APICalls), dash(note)})
		}
	}
	if len(drift) > 0 {
		p.line("Reconciliation (drift) per entity:")
		p.table(append([][]string{{"ENTITY", "WHEN", "LISTED", "LIVE", "MISSING", "DELETED", "ABSENT", "DRIFTED", "REPAIRED", "CALLS", "NOTE"}}, drift...))
	}
	var dels [][]string
	for _, e := range list {
		if d := e.Deletions; d != nil {
			dels = append(dels, []string{e.Name, "inferred", relative(timePtr(&d.Time), now), n(d.Deleted), dash(oneLine(d.Skipped))})
		}
		if h := e.HeldDeletion; h != nil {
			dels = append(dels, []string{e.Name, "HELD", relative(timePtr(&h.Since), now),
				fmt.Sprintf("%d of %d %s", h.Records, h.Live, h.Kind), "via " + h.Via + "; approve or discard (README: Reconcile now, decide on held deletions)"})
		}
	}
	if len(dels) > 0 {
		p.line("Deletions:")
		p.table(append([][]string{{"ENTITY", "KIND", "WHEN", "RECORDS", "NOTE"}}, dels...))
	}
	p.line("")
}

func (p *printer) webhooks(w *erpsyncv1.WebhookStatus, now time.Time) {
	if w == nil {
		return
	}
	p.line("Webhooks:")
	p.line("  last event %s, accepted %d, rejected %d, pending %d, targeted syncs %d", relative(timePtr(w.LastEventAt), now),
		w.Accepted, w.Rejected, len(w.Pending), w.TargetedSyncs)
	if len(w.Overflow) > 0 {
		p.line("  overflow (polled instead): %s", strings.Join(w.Overflow, ", "))
	}
	if t := w.LastTargetedSync; t != nil {
		errText := ""
		if t.Error != "" {
			errText = ", error: " + oneLine(t.Error)
		}
		p.line("  last targeted sync %s: %d documents, %d upserted, %d deleted, %d API calls, lag %s%s",
			relative(timePtr(&t.Time), now), t.Targets, t.Upserted, t.Deleted, t.APICalls, time.Duration(t.LagMillis)*time.Millisecond, errText)
	}
	if s := w.Subscription; s != nil {
		msg := ""
		if s.Message != "" {
			msg = ": " + oneLine(s.Message)
		}
		p.line("  subscriptions %d (checked %s)%s", s.Subscriptions, relative(timePtr(&s.CheckedAt), now), msg)
	}
	p.line("")
}

func (p *printer) quotas(list []QuotaView, note string, now time.Time) {
	p.line("Quota:")
	if note != "" {
		p.line("  %s", note)
	}
	if len(list) > 0 {
		rows := [][]string{{"CREDENTIAL", "QUOTA", "PERIOD START", "USED", "RESERVED", "LIMIT", "LEFT", "BLOCKED UNTIL"}}
		for _, q := range list {
			blocked := "-"
			if q.BlockedUntil != nil && q.BlockedUntil.After(now) {
				blocked = q.BlockedUntil.Format(time.RFC3339)
			}
			rows = append(rows, []string{q.Credential, q.Quota, q.PeriodStart.Format(time.RFC3339), strconv.FormatInt(q.Used, 10),
				strconv.FormatInt(q.Reserved, 10), optIntOr(q.Limit, "per account"), optIntOr(q.Left, "?"), blocked})
		}
		p.table(rows)
	}
	p.line("")
}

func (p *printer) events(list []EventView, note string, now time.Time) {
	p.line("Events:")
	if note != "" {
		p.line("  %s", note)
	}
	if len(list) == 0 && note == "" {
		p.line("  none")
	}
	if len(list) > 0 {
		rows := [][]string{{"LAST SEEN", "TYPE", "REASON", "COUNT", "MESSAGE"}}
		for _, e := range list {
			t := e.Time
			rows = append(rows, []string{relative(&t, now), e.Type, e.Reason, strconv.Itoa(int(max(1, e.Count))), oneLine(e.Message)})
		}
		p.table(rows)
	}
}

func lastSync(s *erpsyncv1.SyncSummary) string {
	if s == nil {
		return "-"
	}
	out := fmt.Sprintf("%s, %d records, %d upserted, %d API calls, %s", s.Mode, s.Records, s.Upserted, s.APICalls, s.Duration.Round(time.Millisecond))
	if s.Syncs > 0 {
		out += fmt.Sprintf(", import over %d syncs", s.Syncs)
	}
	if s.SetAside > 0 {
		out += fmt.Sprintf(", %d set aside", s.SetAside)
	}
	if len(s.Incomplete) > 0 {
		out += ", incomplete: " + strings.Join(s.Incomplete, ",")
	}
	return out
}

func checkpoint(c *erpsyncv1.EntityCheckpoint) string {
	if c == nil {
		return "-"
	}
	out := fmt.Sprintf("page %d, %d records", c.Page, c.Records)
	if c.Total > 0 {
		out += fmt.Sprintf(" of %d", c.Total)
	}
	if c.Cursor != "" {
		out += ", keyset"
	}
	if c.Repeats > 0 {
		out += fmt.Sprintf(", %d repeats", c.Repeats)
	}
	return out
}

func entityNotes(e *erpsyncv1.EntityStatus) string {
	var notes []string
	if e.SetAside > 0 {
		notes = append(notes, fmt.Sprintf("%d set aside", e.SetAside))
	}
	if e.Incomplete != "" {
		notes = append(notes, "incomplete: "+oneLine(e.Incomplete))
	}
	if e.HeldDeletion != nil {
		notes = append(notes, "deletions held")
	}
	return dash(strings.Join(notes, "; "))
}

func inProgress(b bool) string {
	if b {
		return " (in progress)"
	}
	return ""
}

func stamp(t *metav1.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func n(v int64) string { return strconv.FormatInt(v, 10) }

func optInt(v *int64) string { return optIntOr(v, "-") }

func optIntOr(v *int64, none string) string {
	if v == nil {
		return none
	}
	return strconv.FormatInt(*v, 10)
}

// oneLine keeps a message on its table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
