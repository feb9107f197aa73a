package kubectlplugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
)

// maxStatusEvents is how many of the latest events status shows.
const maxStatusEvents = 10

func (o *Options) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show one ErpSync's state, or one line per ErpSync sorted by what needs attention",
		Long: `status NAME shows, per entity, the mode, records, API calls and watermark of its last pass, drift and
deletions where the status has them, the checkpoint of a running pass, the next sync, the quota used and left of
the credentials its last sync spent (status.quotaCredentials; every credential of its connector type when that is
not set), the webhooks and the last events.

Without NAME, or with -A, it lists one line per ErpSync: not Ready first, then stale (no success for three
intervals), then the rest.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.Output); err != nil {
				return err
			}
			if err := o.clients(); err != nil {
				return err
			}
			if len(args) == 0 || o.AllNamespaces {
				if len(args) == 1 {
					return fmt.Errorf("status takes either NAME or -A, not both")
				}
				return o.runList(cmd.Context())
			}
			ns, err := o.namespace()
			if err != nil {
				return err
			}
			v, err := o.statusView(cmd.Context(), ns, args[0])
			if err != nil {
				return err
			}
			if o.Output != OutputTable {
				return printData(o.Streams.Out, o.Output, v)
			}
			return RenderStatus(o.Streams.Out, v, o.now())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list the ErpSyncs of every namespace")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "json or yaml for scripts (default: a table)")
	return cmd
}

// runList prints the listing of the namespace, or of every namespace.
func (o *Options) runList(ctx context.Context) error {
	var opts []client.ListOption
	if !o.AllNamespaces {
		ns, err := o.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var list erpsyncv1.ErpSyncList
	if err := o.Client.List(ctx, &list, opts...); err != nil {
		return fmt.Errorf("listing ErpSyncs: %w", err)
	}
	now := o.now()
	sums := make([]Summary, 0, len(list.Items))
	for i := range list.Items {
		sums = append(sums, Summarize(&list.Items[i], now))
	}
	SortSummaries(sums)
	if o.Output != OutputTable {
		return printData(o.Streams.Out, o.Output, sums)
	}
	if len(sums) == 0 {
		_, err := fmt.Fprintln(o.Streams.ErrOut, "No ErpSyncs found.")
		return err
	}
	return RenderSummaries(o.Streams.Out, sums, o.AllNamespaces, now)
}

// statusView reads an ErpSync, its events and the quota counters of its
// connector's credentials. Events and quotas the user may not read are
// noted, not fatal.
func (o *Options) statusView(ctx context.Context, ns, name string) (*StatusView, error) {
	es, err := o.get(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	es.ManagedFields = nil
	es.SetGroupVersionKind(erpsyncv1.GroupVersion.WithKind("ErpSync"))
	v := &StatusView{Summary: Summarize(es, o.now()), ErpSync: es}
	evs, err := o.events(ctx, es)
	if err != nil {
		v.EventsNote = "events not readable: " + err.Error()
	}
	v.Events = Events(evs, maxStatusEvents)
	v.Quotas, v.QuotaNote = o.quotas(ctx, es)
	return v, nil
}

// quotas reads the quota counters of the credentials es spends (see
// QuotaConfigMapsOf); a failure is the note, since status shows what it
// can.
func (o *Options) quotas(ctx context.Context, es *erpsyncv1.ErpSync) ([]QuotaView, string) {
	cms, err := o.quotaConfigMaps(ctx)
	if err != nil {
		return nil, "quota counters not readable: " + err.Error()
	}
	mine, attributed, missing := QuotaConfigMapsOf(cms, es)
	views, err := Quotas(mine, "")
	if err != nil {
		return nil, err.Error()
	}
	return views, quotaNote(views, es, attributed, missing, o.ManagerNamespace)
}

// events lists the corev1 Events about the ErpSync.
func (o *Options) events(ctx context.Context, es *erpsyncv1.ErpSync) ([]corev1.Event, error) {
	var list corev1.EventList
	err := o.Client.List(ctx, &list, client.InNamespace(es.Namespace), client.MatchingFields{
		"involvedObject.kind": "ErpSync", "involvedObject.name": es.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("listing events of ErpSync %s/%s: %w", es.Namespace, es.Name, err)
	}
	// A namesake of another kind or a deleted predecessor has another UID.
	out := list.Items[:0]
	for _, e := range list.Items {
		if e.InvolvedObject.UID == "" || e.InvolvedObject.UID == es.UID {
			out = append(out, e)
		}
	}
	return out, nil
}

// quotaConfigMaps lists the quota store's ConfigMaps.
func (o *Options) quotaConfigMaps(ctx context.Context) ([]corev1.ConfigMap, error) {
	var list corev1.ConfigMapList
	if err := o.Client.List(ctx, &list, client.InNamespace(o.ManagerNamespace), client.MatchingLabels{quotastore.LabelKey: "true"}); err != nil {
		return nil, fmt.Errorf("listing quota ConfigMaps in %s: %w", o.ManagerNamespace, err)
	}
	return list.Items, nil
}
