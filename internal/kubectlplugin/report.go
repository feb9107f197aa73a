package kubectlplugin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// reportFlags are the flags of report.
type reportFlags struct {
	file     string
	tail     int64
	since    time.Duration
	selector string
}

func (o *Options) reportCommand() *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Write a support bundle: the ErpSync, its events, the quota ConfigMaps and the manager's log lines about it",
		Long: `report writes a support bundle (a .tar.gz, or a directory when -f names no .tar.gz/.tgz) with the ErpSync,
its status as 'status' shows it, its events, the quota ConfigMaps it spends (status.quotaCredentials; those of its
connector type when that is not set), and the lines of the
manager pods' recent logs that name the ErpSync. Secrets are never read: the bundle names the credentials Secret
and holds none of its values. What could not be read (no access, no manager pods) is listed in README.txt.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runReport(cmd.Context(), args[0], &f)
		},
	}
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "where to write the bundle (default erpsync-report-NAMESPACE-NAME-TIME.tar.gz)")
	cmd.Flags().Int64Var(&f.tail, "log-lines", 5000, "lines read from the end of each manager container's log")
	cmd.Flags().DurationVar(&f.since, "log-since", 24*time.Hour, "read only the manager logs of this recent span (0: all)")
	cmd.Flags().StringVar(&f.selector, "manager-selector", DefaultManagerSelector, "label selector of the manager's pods")
	return cmd
}

// bundle collects the files of a report in memory.
type bundle struct {
	files map[string][]byte
	notes []string
}

func (b *bundle) add(name string, data []byte) { b.files[name] = data }

func (b *bundle) addYAML(name string, v any) {
	data, err := yaml.Marshal(v)
	if err != nil {
		b.note("%s: encoding: %v", name, err)
		return
	}
	b.add(name, data)
}

func (b *bundle) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (o *Options) runReport(ctx context.Context, name string, f *reportFlags) error {
	if err := o.clients(); err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	now := o.now()
	v, err := o.statusView(ctx, ns, name)
	if err != nil {
		return err
	}
	b := &bundle{files: map[string][]byte{}}
	es := v.ErpSync
	b.addYAML("erpsync.yaml", es)
	var txt bytes.Buffer
	if err := RenderStatus(&txt, v, now); err != nil {
		b.note("status.txt: %v", err)
	}
	b.add("status.txt", txt.Bytes())
	if v.EventsNote != "" {
		b.note("events: %s", v.EventsNote)
	}
	if evs, err := o.events(ctx, es); err == nil {
		for i := range evs {
			evs[i].ManagedFields = nil
		}
		b.addYAML("events.yaml", evs)
	}
	b.note("quota: %s", v.QuotaNote)
	if cms, err := o.quotaConfigMaps(ctx); err == nil {
		mine, _, _ := QuotaConfigMapsOf(cms, es)
		for i := range mine {
			mine[i].ManagedFields = nil
		}
		b.addYAML("quota-configmaps.yaml", mine)
	}
	b.add("secrets.txt", o.secretNames(ctx, es))
	o.managerLogs(ctx, b, es, f)

	readme := fmt.Sprintf("Support bundle of ErpSync %s/%s, written %s by kubectl-erpsync.\n"+
		"Secrets are never read: secrets.txt names the credentials Secret and holds none of its values.\n\n",
		ns, name, now.UTC().Format(time.RFC3339))
	if len(b.notes) > 0 {
		readme += "Notes (what could not be read, and why):\n- " + strings.Join(b.notes, "\n- ") + "\n"
	}
	b.add("README.txt", []byte(readme))

	path := f.file
	if path == "" {
		path = fmt.Sprintf("erpsync-report-%s-%s-%s.tar.gz", ns, name, now.UTC().Format("20060102T150405Z"))
	}
	if err := b.write(path, fmt.Sprintf("erpsync-report-%s-%s", ns, name), now); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.Out, "wrote %s (%d files)\n", path, len(b.files))
	return nil
}

// secretNames describes the credentials Secret by its metadata alone: a
// metadata-only read returns no data.
func (o *Options) secretNames(ctx context.Context, es *erpsyncv1.ErpSync) []byte {
	ref := es.Spec.Connector.CredentialsRef.Name
	out := fmt.Sprintf("credentialsRef: %s (values not read, not included)\n", ref)
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := o.Client.Get(ctx, client.ObjectKey{Namespace: es.Namespace, Name: ref}, m); err != nil {
		return []byte(out + fmt.Sprintf("metadata: not readable: %v\n", err))
	}
	out += fmt.Sprintf("exists: true, created %s, resourceVersion %s\n", m.CreationTimestamp.UTC().Format(time.RFC3339), m.ResourceVersion)
	out += fmt.Sprintf("label %s=%q (the manager uses only Secrets labelled %q)\n",
		erpsyncv1.CredentialsLabel, m.Labels[erpsyncv1.CredentialsLabel], erpsyncv1.CredentialsLabelValue)
	return []byte(out)
}

// managerLogs adds the lines of the manager pods' logs that name the
// ErpSync; no access or no pods is a note, not a failure.
func (o *Options) managerLogs(ctx context.Context, b *bundle, es *erpsyncv1.ErpSync, f *reportFlags) {
	pods, err := o.Clientset.CoreV1().Pods(o.ManagerNamespace).List(ctx, metav1.ListOptions{LabelSelector: f.selector})
	if err != nil {
		b.note("manager logs: listing pods %q in %s: %v", f.selector, o.ManagerNamespace, err)
		return
	}
	if len(pods.Items) == 0 {
		b.note("manager logs: no pods match %q in %s", f.selector, o.ManagerNamespace)
		return
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			opts := &corev1.PodLogOptions{Container: c.Name}
			if f.tail > 0 {
				opts.TailLines = &f.tail
			}
			if f.since > 0 {
				s := int64(f.since.Seconds())
				opts.SinceSeconds = &s
			}
			rc, err := o.Clientset.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
			if err != nil {
				b.note("manager logs: %s/%s: %v", p.Name, c.Name, err)
				continue
			}
			lines, err := LinesAbout(rc, es.Namespace, es.Name)
			_ = rc.Close()
			if err != nil {
				b.note("manager logs: %s/%s: reading: %v", p.Name, c.Name, err)
			}
			b.add(filepath.Join("manager-logs", p.Name+"_"+c.Name+".log"), lines)
		}
	}
}

// LinesAbout returns the lines of r that name both the namespace and the
// name of an ErpSync (the manager logs them as separate fields, or as
// namespace/name).
func LinesAbout(r io.Reader, ns, name string) ([]byte, error) {
	var out bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	qns, qname := `"`+ns+`"`, `"`+name+`"`
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, ns+"/"+name) || (strings.Contains(line, qns) && strings.Contains(line, qname)) {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return out.Bytes(), fmt.Errorf("scanning the log: %w", err)
	}
	return out.Bytes(), nil
}

// write stores the bundle as a .tar.gz (files under dir/) or, for any
// other path, as a directory.
func (b *bundle) write(path, dir string, now time.Time) error {
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	slices.Sort(names)
	if !strings.HasSuffix(path, ".tar.gz") && !strings.HasSuffix(path, ".tgz") {
		for _, n := range names {
			p := filepath.Join(path, n)
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return fmt.Errorf("writing the bundle: %w", err)
			}
			if err := os.WriteFile(p, b.files[n], 0o600); err != nil {
				return fmt.Errorf("writing the bundle: %w", err)
			}
		}
		return nil
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the bundle: %w", err)
	}
	zw := gzip.NewWriter(file)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		data := b.files[n]
		h := &tar.Header{Name: dir + "/" + filepath.ToSlash(n), Mode: 0o600, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}
		if err = tw.WriteHeader(h); err != nil {
			break
		}
		if _, err = tw.Write(data); err != nil {
			break
		}
	}
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the bundle %s: %w", path, err)
	}
	return nil
}
