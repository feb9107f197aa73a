package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// waitPoll is how often --wait reads the ErpSync.
const waitPoll = 500 * time.Millisecond

// actionFlags are the flags of the commands that change an ErpSync.
type actionFlags struct {
	wait         bool
	timeout      time.Duration
	fieldManager string
}

func (f *actionFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&f.wait, "wait", false, "wait until the operator has acted ("+what+")")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long --wait waits")
	cmd.Flags().StringVar(&f.fieldManager, "field-manager", FieldManager,
		"field manager of the write (for an ErpSync applied by Flux: flux-client-side-apply, as the README says)")
}

// NewToken returns a request token: any new value is a new request.
func NewToken(now time.Time) string {
	return now.UTC().Format(time.RFC3339Nano)
}

// RequestPatch is the merge patch setting one request annotation.
func RequestPatch(annotation, token string) ([]byte, error) {
	return AnnotationsPatch(map[string]string{annotation: token})
}

// AnnotationsPatch is the merge patch setting annotations, in one write.
func AnnotationsPatch(annotations map[string]string) ([]byte, error) {
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	return b, nil
}

// EntityResyncPatch is the merge patch asking for a full resync of some
// entities: the list and a new token, in one write (the operator reads the
// list when it sees the token).
func EntityResyncPatch(entities []string, token string) ([]byte, error) {
	return AnnotationsPatch(map[string]string{
		erpsyncv1.FullResyncEntitiesAnnotation:   strings.Join(entities, ","),
		erpsyncv1.FullResyncEntitiesAtAnnotation: token,
	})
}

// CheckResyncEntities checks the entities of resync --entity before
// anything is written: names as the CRD allows them (lower-case letters
// and underscores), repeats dropped, and each one the ErpSync syncs, as
// far as the object tells (spec.connector.entities when set, else the
// entities in status, when it has any). The operator checks them again
// against its connector, and refuses what it does not sync.
func CheckResyncEntities(es *erpsyncv1.ErpSync, entities []string) ([]string, error) {
	var out []string
	for _, e := range entities {
		e = strings.TrimSpace(e)
		if e == "" || slices.Contains(out, e) {
			continue
		}
		if len(e) > 64 || strings.Trim(e, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return nil, fmt.Errorf("--entity %q: an entity name is lower-case letters and underscores (products, sales_orders)", e)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("--entity names no entity")
	}
	if len(out) > 32 {
		return nil, fmt.Errorf("--entity names %d entities, at most 32", len(out))
	}
	known, from := es.Spec.Connector.Entities, "spec.connector.entities"
	if len(known) == 0 {
		from = "status.entities"
		for _, st := range es.Status.Entities {
			known = append(known, st.Name)
		}
	}
	if len(known) == 0 {
		return out, nil
	}
	for _, e := range out {
		if !slices.Contains(known, e) {
			return nil, fmt.Errorf("--entity %q: erpsync/%s does not sync it (%s: %s)", e, es.Name, from, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// EntityResyncOutcome reads the operator's verdict on the entity resync
// with token: accepted (status.lastHandledFullResyncEntities set, once the
// operator checked the names), refused or not started (the sync that
// echoed the token ended without accepting them: err says why, from the
// Ready condition), or not yet known (done false).
func EntityResyncOutcome(es *erpsyncv1.ErpSync, token string) (done bool, err error) {
	st := &es.Status
	if st.LastHandledFullResyncEntitiesAt != token {
		return false, nil
	}
	if len(st.LastHandledFullResyncEntities) > 0 {
		return true, nil
	}
	if st.Phase == erpsyncv1.PhaseSyncing {
		return false, nil
	}
	reason, msg := "-", "-"
	if c := meta.FindStatusCondition(st.Conditions, erpsyncv1.ReadyCondition); c != nil {
		reason, msg = c.Reason, c.Message
	}
	if reason == erpsyncv1.ReasonInvalidConf {
		return true, fmt.Errorf("the operator refused the full resync: %s", msg)
	}
	return true, fmt.Errorf("the sync that took the request ended before it started the full resync (%s: %s); the operator retries it with the next sync", reason, msg)
}

// SuspendPatch is the merge patch setting spec.suspend.
func SuspendPatch(suspend bool) ([]byte, error) {
	b, err := json.Marshal(map[string]any{"spec": map[string]any{"suspend": suspend}})
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	return b, nil
}

// Handled reports whether the status echoes token for annotation.
func Handled(es *erpsyncv1.ErpSync, annotation, token string) bool {
	switch annotation {
	case erpsyncv1.RequestedAtAnnotation:
		return es.Status.LastHandledReconcileAt == token
	case erpsyncv1.FullResyncAtAnnotation:
		return es.Status.LastHandledFullResyncAt == token
	case erpsyncv1.FullResyncEntitiesAtAnnotation:
		return es.Status.LastHandledFullResyncEntitiesAt == token
	}
	return false
}

// SuspendActed reports whether the operator has acted on spec.suspend:
// phase Suspended once suspended; on resume, a phase other than Suspended
// or a next sync scheduled again (markSuspended clears it).
func SuspendActed(es *erpsyncv1.ErpSync, suspend bool) bool {
	if suspend {
		return es.Status.Phase == erpsyncv1.PhaseSuspended
	}
	return es.Status.Phase != erpsyncv1.PhaseSuspended || es.Status.NextSyncAt != nil
}

func (o *Options) syncCommand() *cobra.Command {
	var f actionFlags
	cmd := &cobra.Command{
		Use:   "sync NAME",
		Short: "Ask for an incremental sync now (annotation " + erpsyncv1.RequestedAtAnnotation + ")",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.request(cmd.Context(), args[0], erpsyncv1.RequestedAtAnnotation, "sync", &f)
		},
	}
	f.add(cmd, "status.lastHandledReconcileAt echoes the request")
	return cmd
}

func (o *Options) resyncCommand() *cobra.Command {
	var f actionFlags
	var entities []string
	cmd := &cobra.Command{
		Use:   "resync NAME [--entity E]...",
		Short: "Ask for a full resync that ignores the watermarks of every entity, or of the --entity ones",
		Long: `Without --entity: a full resync of every entity (annotation ` + erpsyncv1.FullResyncAtAnnotation + `, echoed in
status.lastHandledFullResyncAt).

With --entity (repeated, or comma-separated): the named entities are read in full, with what a full
pass enables (deletions inferred from records absent from it, under the mass-deletion guard), and the
others incrementally in the same sync (annotations ` + erpsyncv1.FullResyncEntitiesAnnotation + ` and
` + erpsyncv1.FullResyncEntitiesAtAnnotation + `, echoed in status.lastHandledFullResyncEntitiesAt; the entities the
operator accepted in status.lastHandledFullResyncEntities). --wait waits until the operator has accepted
the entities, and fails if it refused them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("entity") {
				return o.entityResync(cmd.Context(), args[0], entities, &f)
			}
			return o.request(cmd.Context(), args[0], erpsyncv1.FullResyncAtAnnotation, "full resync", &f)
		},
	}
	f.add(cmd, "the operator echoes the request; with --entity, it accepted the entities")
	cmd.Flags().StringSliceVar(&entities, "entity", nil, "an entity to read in full (repeat it, or separate names with commas); the others stay incremental")
	return cmd
}

// entityResync asks for a full resync of some entities and, with --wait,
// waits for the operator's verdict on them.
func (o *Options) entityResync(ctx context.Context, name string, entities []string, f *actionFlags) error {
	ns, es, err := o.target(ctx, name)
	if err != nil {
		return err
	}
	entities, err = CheckResyncEntities(es, entities)
	if err != nil {
		return err
	}
	token := NewToken(o.now())
	patch, err := EntityResyncPatch(entities, token)
	if err != nil {
		return err
	}
	if err := o.patch(ctx, es, patch, f, "annotating"); err != nil {
		return err
	}
	what := "full resync of " + strings.Join(entities, ", ")
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: %s requested (%s=%s, %s=%s)\n", name, what,
		erpsyncv1.FullResyncEntitiesAnnotation, strings.Join(entities, ","), erpsyncv1.FullResyncEntitiesAtAnnotation, token)
	if wait, err := o.waitForRequest(es, f); !wait || err != nil {
		return err
	}
	var verdict error
	got, err := o.waitFor(ctx, ns, name, f.timeout, func(es *erpsyncv1.ErpSync) bool {
		done, v := EntityResyncOutcome(es, token)
		verdict = v
		return done
	})
	if err != nil {
		return fmt.Errorf("waiting for the operator to handle the %s: %w", what, err)
	}
	if verdict != nil {
		return fmt.Errorf("erpsync/%s: %w", name, verdict)
	}
	started := "-"
	if got.Status.LastSyncStart != nil {
		started = got.Status.LastSyncStart.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: full resync of %s accepted by the operator (sync started %s, phase %s)\n", name,
		strings.Join(got.Status.LastHandledFullResyncEntities, ", "), started, dash(string(got.Status.Phase)))
	return nil
}

func (o *Options) suspendCommand(suspend bool) *cobra.Command {
	var f actionFlags
	use, short, what := "suspend NAME", "Set spec.suspend: start nothing new, stop a running sync at its next page", "phase Suspended"
	if !suspend {
		use, short, what = "resume NAME", "Clear spec.suspend: syncs start again", "the phase leaves Suspended or a next sync is scheduled"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.setSuspend(cmd.Context(), args[0], suspend, &f)
		},
	}
	f.add(cmd, what)
	return cmd
}

// request sets a request annotation to a new token and, with --wait, waits
// for its echo in status.
func (o *Options) request(ctx context.Context, name, annotation, what string, f *actionFlags) error {
	ns, es, err := o.target(ctx, name)
	if err != nil {
		return err
	}
	token := NewToken(o.now())
	patch, err := RequestPatch(annotation, token)
	if err != nil {
		return err
	}
	if err := o.patch(ctx, es, patch, f, "annotating"); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: %s requested (%s=%s)\n", name, what, annotation, token)
	if wait, err := o.waitForRequest(es, f); !wait || err != nil {
		return err
	}
	got, err := o.waitFor(ctx, ns, name, f.timeout, func(es *erpsyncv1.ErpSync) bool { return Handled(es, annotation, token) })
	if err != nil {
		return fmt.Errorf("waiting for the operator to handle the %s: %w", what, err)
	}
	started := "-"
	if got.Status.LastSyncStart != nil {
		started = got.Status.LastSyncStart.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: %s handled by the operator (sync started %s, phase %s)\n", name, what, started, dash(string(got.Status.Phase)))
	return nil
}

// setSuspend sets spec.suspend and, with --wait, waits for the phase.
func (o *Options) setSuspend(ctx context.Context, name string, suspend bool, f *actionFlags) error {
	ns, es, err := o.target(ctx, name)
	if err != nil {
		return err
	}
	verb := "suspended"
	if !suspend {
		verb = "resumed"
	}
	if es.Spec.Suspend == suspend {
		fmt.Fprintf(o.Streams.Out, "erpsync/%s: already %s (spec.suspend: %t)\n", name, verb, suspend)
	} else {
		patch, err := SuspendPatch(suspend)
		if err != nil {
			return err
		}
		if err := o.patch(ctx, es, patch, f, "setting spec.suspend of"); err != nil {
			return err
		}
		fmt.Fprintf(o.Streams.Out, "erpsync/%s %s (spec.suspend: %t; keep it in Git if Git applies this object)\n", name, verb, suspend)
	}
	if !f.wait {
		return nil
	}
	got, err := o.waitFor(ctx, ns, name, f.timeout, func(es *erpsyncv1.ErpSync) bool { return SuspendActed(es, suspend) })
	if err != nil {
		return fmt.Errorf("waiting for the operator to act on spec.suspend: %w", err)
	}
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: the operator has acted (phase %s)\n", name, dash(string(got.Status.Phase)))
	return nil
}

// target returns the namespace and the ErpSync name names, once the
// clients are set up.
func (o *Options) target(ctx context.Context, name string) (string, *erpsyncv1.ErpSync, error) {
	if err := o.clients(); err != nil {
		return "", nil, err
	}
	ns, err := o.namespace()
	if err != nil {
		return "", nil, err
	}
	es, err := o.get(ctx, ns, name)
	if err != nil {
		return "", nil, err
	}
	return ns, es, nil
}

// patch applies a merge patch to es under the --field-manager; doing says
// what it does, for the error.
func (o *Options) patch(ctx context.Context, es *erpsyncv1.ErpSync, patch []byte, f *actionFlags, doing string) error {
	if err := o.Client.Patch(ctx, es, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(f.fieldManager)); err != nil {
		return fmt.Errorf("%s ErpSync %s/%s: %w", doing, es.Namespace, es.Name, err)
	}
	return nil
}

// waitForRequest warns that a suspended ErpSync ignores requests and says
// whether to wait for the operator to handle one: with --wait, and not
// while suspended (an error then).
func (o *Options) waitForRequest(es *erpsyncv1.ErpSync, f *actionFlags) (bool, error) {
	if es.Spec.Suspend {
		fmt.Fprintf(o.Streams.ErrOut, "erpsync/%s is suspended: the operator ignores requests until it is resumed\n", es.Name)
	}
	if !f.wait {
		return false, nil
	}
	if es.Spec.Suspend {
		return false, fmt.Errorf("not waiting: erpsync/%s is suspended", es.Name)
	}
	return true, nil
}

// errTimeout says --wait ran out.
var errTimeout = errors.New("timed out")

// waitFor polls the ErpSync until done returns true or timeout passes.
func (o *Options) waitFor(ctx context.Context, ns, name string, timeout time.Duration, done func(*erpsyncv1.ErpSync) bool) (*erpsyncv1.ErpSync, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		es, err := o.get(ctx, ns, name)
		if err == nil && done(es) {
			return es, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, fmt.Errorf("%w after %s: %w", errTimeout, timeout, err)
			}
			return nil, fmt.Errorf("%w after %s", errTimeout, timeout)
		case <-t.C:
		}
	}
}
