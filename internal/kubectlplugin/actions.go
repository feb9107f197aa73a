package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
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
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotation: token}}})
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	return b, nil
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
	var entity string
	cmd := &cobra.Command{
		Use:   "resync NAME",
		Short: "Ask for a full resync that ignores every watermark (annotation " + erpsyncv1.FullResyncAtAnnotation + ")",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if entity != "" {
				return fmt.Errorf("--entity %s: the operator has no per-entity resync; %s resyncs every entity of the ErpSync (run resync without --entity)",
					entity, erpsyncv1.FullResyncAtAnnotation)
			}
			return o.request(cmd.Context(), args[0], erpsyncv1.FullResyncAtAnnotation, "full resync", &f)
		},
	}
	f.add(cmd, "status.lastHandledFullResyncAt echoes the request")
	cmd.Flags().StringVar(&entity, "entity", "", "not supported by the operator: a full resync covers every entity")
	return cmd
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
	if err := o.clients(); err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	es, err := o.get(ctx, ns, name)
	if err != nil {
		return err
	}
	token := NewToken(o.now())
	patch, err := RequestPatch(annotation, token)
	if err != nil {
		return err
	}
	if err := o.Client.Patch(ctx, es, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(f.fieldManager)); err != nil {
		return fmt.Errorf("annotating ErpSync %s/%s: %w", ns, name, err)
	}
	fmt.Fprintf(o.Streams.Out, "erpsync/%s: %s requested (%s=%s)\n", name, what, annotation, token)
	if es.Spec.Suspend {
		fmt.Fprintf(o.Streams.ErrOut, "erpsync/%s is suspended: the operator ignores requests until it is resumed\n", name)
	}
	if !f.wait {
		return nil
	}
	if es.Spec.Suspend {
		return fmt.Errorf("not waiting: erpsync/%s is suspended", name)
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
	if err := o.clients(); err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	es, err := o.get(ctx, ns, name)
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
		if err := o.Client.Patch(ctx, es, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(f.fieldManager)); err != nil {
			return fmt.Errorf("setting spec.suspend of ErpSync %s/%s: %w", ns, name, err)
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
