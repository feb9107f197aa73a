package kubectlplugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// FieldManager owns the plugin's writes (annotations and spec.suspend).
const FieldManager = "kubectl-erpsync"

// DefaultManagerNamespace is where config/default installs the manager;
// its quota ConfigMaps and pods live there.
const DefaultManagerNamespace = "erpsync-system"

// DefaultManagerSelector selects the manager's pods (config/manager).
const DefaultManagerSelector = "control-plane=controller-manager"

// Options are the flags every command shares.
type Options struct {
	Streams genericiooptions.IOStreams
	Config  *genericclioptions.ConfigFlags
	// AllNamespaces lists ErpSyncs of every namespace.
	AllNamespaces bool
	// ManagerNamespace holds the quota ConfigMaps and the manager's pods.
	ManagerNamespace string
	// ManagerSelector selects the manager's pods for report's logs.
	ManagerSelector string
	// Output is "", json or yaml.
	Output string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	// Clients, built on first use (tests may set them).
	Client    client.Client
	Clientset kubernetes.Interface
}

// NewCommand returns the root command of kubectl-erpsync.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newCommand(&Options{Streams: streams, Config: genericclioptions.NewConfigFlags(true)})
}

// newCommand builds the commands on o (tests set its clients and clock).
func newCommand(o *Options) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-erpsync",
		Short: "Inspect and drive ErpSyncs: status, sync, resync, suspend, resume, report",
		Long: `kubectl erpsync shows what the ErpSync operator synced, when, at what cost and what is wrong,
and asks it for syncs with the annotations and fields the README documents.`,
		SilenceUsage: true,
	}
	root.SetOut(o.Streams.Out)
	root.SetErr(o.Streams.ErrOut)
	o.Config.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&o.ManagerNamespace, "manager-namespace", DefaultManagerNamespace,
		"namespace of the operator's manager: its quota ConfigMaps (--quota-namespace) and pods")
	root.AddCommand(o.statusCommand(), o.syncCommand(), o.resyncCommand(), o.suspendCommand(true), o.suspendCommand(false), o.reportCommand())
	return root
}

// Scheme knows ErpSyncs and the core types the plugin reads.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering core types: %w", err)
	}
	if err := erpsyncv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering ErpSync: %w", err)
	}
	return s, nil
}

// clients builds the API clients from the kubeconfig flags.
func (o *Options) clients() error {
	if o.Client != nil && o.Clientset != nil {
		return nil
	}
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	s, err := Scheme()
	if err != nil {
		return err
	}
	if o.Client == nil {
		if o.Client, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
			return fmt.Errorf("connecting to the API server: %w", err)
		}
	}
	if o.Clientset == nil {
		if o.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
			return fmt.Errorf("connecting to the API server: %w", err)
		}
	}
	return nil
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (o *Options) namespace() (string, error) {
	ns, _, err := o.Config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// get reads one ErpSync.
func (o *Options) get(ctx context.Context, ns, name string) (*erpsyncv1.ErpSync, error) {
	var es erpsyncv1.ErpSync
	if err := o.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &es); err != nil {
		return nil, fmt.Errorf("reading ErpSync %s/%s: %w", ns, name, err)
	}
	return &es, nil
}
