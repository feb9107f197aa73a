// Command kubectl-erpsync is the kubectl plugin of the ErpSync operator:
// installed on PATH as kubectl-erpsync, it runs as `kubectl erpsync`.
//
//	kubectl erpsync status [NAME] [-A] [-o json|yaml]
//	kubectl erpsync sync|resync|suspend|resume NAME [--wait]
//	kubectl erpsync report NAME [-f bundle.tar.gz]
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/erpsync/erpsync-operator/internal/kubectlplugin"
)

func main() {
	cmd := kubectlplugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		stop()
		os.Exit(1)
	}
}
