package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

// nadCount is how many attachments one run writes; NODENET_BENCH_NADS overrides.
const nadCount = 200

// nadJSON is the CNI configuration of attachment i, as nodenet renders the typed attributes
// of the multus-macvlan set-up (the same bytes, so every way writes the same objects).
func nadJSON(i int) string {
	return fmt.Sprintf(`{"cniVersion":"0.3.1","name":"nad-%03d","type":"macvlan","master":"eth1","mode":"bridge",`+
		`"ipam":{"type":"whereabouts","range":"192.168.60.0/24","range_start":"192.168.60.20","range_end":"192.168.60.50","gateway":"192.168.60.1"}}`, i)
}

// BenchmarkNetworkAttachments writes the same N macvlan NetworkAttachmentDefinitions to a
// real API server three ways and prints the ratios: (a) terraform plan and apply of N
// nodenet_network_attachment (the plan checks every node through the agents), (b) kubectl
// apply of N manifests, one process each, as a user would, (c) one kubectl apply -f of all.
// One iteration whatever b.N says; run with -benchtime 1x (make bench).
func BenchmarkNetworkAttachments(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the lab is made of network namespaces")
	}
	tf, err := exec.LookPath("terraform")
	if err != nil {
		b.Skip("terraform is not on PATH")
	}
	kubetest.Require(b, "etcd", "kube-apiserver", "kubectl")
	n := nadCount
	if s := os.Getenv("NODENET_BENCH_NADS"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 5000 {
			b.Fatalf("NODENET_BENCH_NADS=%q: 1 to 5000", s)
		}
	}
	kc := kubetest.Start(b, "bench")
	l := nadLab(b)
	dir := b.TempDir()
	rc := providerRC(b, dir)

	tfDir := filepath.Join(dir, "tf")
	writeFile(b, filepath.Join(tfDir, "main.tf"), nadTerraform(l, kc.Kubeconfig, n))
	terraform := func(args ...string) time.Duration {
		cmd := exec.Command(tf, args...)
		cmd.Dir = tfDir
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		if logDir := os.Getenv("NODENET_BENCH_TF_LOG_DIR"); logDir != "" {
			// As in BenchmarkVxlanMesh: for finding where the time goes (trace logging is slow).
			cmd.Env = append(cmd.Env, "TF_LOG=trace", "TF_LOG_PATH="+filepath.Join(logDir, "nad-"+args[0]+".log"))
		}
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return time.Since(start)
	}
	plan := terraform("plan", "-out=tfplan", "-input=false", "-no-color")
	applyOnly := terraform("apply", "-input=false", "-no-color", "tfplan")
	apply := plan + applyOnly
	expectNADs(b, kc, n, "(a) terraform plan + apply")
	noop := terraform("plan", "-detailed-exitcode", "-input=false", "-no-color") // exit 2 (changes) fails
	terraform("destroy", "-auto-approve", "-input=false", "-no-color")
	expectNADs(b, kc, 0, "terraform destroy")

	manifests := filepath.Join(dir, "manifests")
	for i := 0; i < n; i++ {
		writeFile(b, filepath.Join(manifests, fmt.Sprintf("nad-%03d.yaml", i)), nadManifest(i))
	}
	kubectl := func(args ...string) {
		cmd := exec.Command(kubetest.Binary("kubectl"), append([]string{"--kubeconfig", kc.Kubeconfig}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		kubectl("apply", "-f", filepath.Join(manifests, fmt.Sprintf("nad-%03d.yaml", i)))
	}
	perFile := time.Since(start)
	expectNADs(b, kc, n, "(b) kubectl apply per manifest")
	kubectl("delete", "-f", manifests)
	expectNADs(b, kc, 0, "kubectl delete")

	start = time.Now()
	kubectl("apply", "-f", manifests)
	oneApply := time.Since(start)
	expectNADs(b, kc, n, "(c) one kubectl apply -f")

	fmt.Printf("\nNetworkAttachmentDefinitions: %d (macvlan on eth1, whereabouts), %d lab nodes checked by the plan\n", n, len(l.Hosts))
	fmt.Printf("  (a) terraform plan + apply                                        %7.2f s\n", apply.Seconds())
	fmt.Printf("      plan (node checks through the agents, namespace)              %7.2f s\n", plan.Seconds())
	fmt.Printf("      apply of the saved plan (server-side apply, read back)        %7.2f s\n", applyOnly.Seconds())
	fmt.Printf("      terraform plan with nothing to do                             %7.2f s\n", noop.Seconds())
	fmt.Printf("  (b) kubectl apply, one process per manifest                       %7.2f s\n", perFile.Seconds())
	fmt.Printf("  (c) one kubectl apply -f of all manifests                         %7.2f s\n", oneApply.Seconds())
	fmt.Printf("  ratios: (b)/(a) = %.2fx   (a)/(c) = %.2fx\n\n", perFile.Seconds()/apply.Seconds(), apply.Seconds()/oneApply.Seconds())
	b.ReportMetric(apply.Seconds(), "s-tf-apply")
	b.ReportMetric(noop.Seconds(), "s-tf-noop-plan")
	b.ReportMetric(perFile.Seconds(), "s-kubectl-each")
	b.ReportMetric(oneApply.Seconds(), "s-kubectl-all")
	b.ReportMetric(perFile.Seconds()/apply.Seconds(), "x-b/a")
	b.ReportMetric(apply.Seconds()/oneApply.Seconds(), "x-a/c")
}

// nadLab: two nodes of cluster "bench" with eth1, for the plan's checks.
func nadLab(b *testing.B) *lab.Lab {
	opts := lab.Options{Dir: filepath.Join(b.TempDir(), "lab"), Start: lab.InProcessAgent("bench"), Hosts: []lab.HostSpec{
		{Cluster: "bench", Name: "node-1", UnderlayIP: netip.MustParsePrefix("10.99.0.1/16")},
		{Cluster: "bench", Name: "node-2", UnderlayIP: netip.MustParsePrefix("10.99.0.2/16")},
	}}
	l, err := lab.Up(context.Background(), opts)
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	b.Cleanup(func() {
		if err := l.Down(); err != nil {
			b.Errorf("lab down: %v", err)
		}
	})
	if _, err := l.AddSegment("seg", "eth1", l.Hosts...); err != nil {
		b.Fatal(err)
	}
	return l
}

// providerRC builds the provider and a terraformrc pointing terraform at it (dev_overrides).
func providerRC(b *testing.B, dir string) string {
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-nodenet"), "github.com/nodenet/terraform-provider-nodenet")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build provider: %v\n%s", err, out)
	}
	rc := filepath.Join(dir, "terraformrc")
	writeFile(b, rc, fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"registry.terraform.io/nodenet/nodenet\" = %q\n  }\n  direct {}\n}\n", bin))
	return rc
}

func nadTerraform(l *lab.Lab, kubeconfig string, n int) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n\n")
	fmt.Fprintf(&b, "provider \"nodenet\" {\n  tls = {\n    ca_cert = file(%q)\n    client_cert = file(%q)\n    client_key = file(%q)\n  }\n", l.CAFile, l.ClientCertFile, l.ClientKeyFile)
	fmt.Fprintf(&b, "  clusters = {\n    bench = {\n      kubernetes = { config_path = %q }\n      nodes = {\n", kubeconfig)
	for _, h := range l.Hosts {
		fmt.Fprintf(&b, "        %q = { agent = %q }\n", h.Name, h.AgentAddr)
	}
	b.WriteString("      }\n    }\n  }\n}\n\n")
	fmt.Fprintf(&b, `resource "nodenet_network_attachment" "nad" {
  count     = %d
  cluster   = "bench"
  namespace = "default"
  name      = format("nad-%%03d", count.index)
  macvlan   = { master = "eth1", mode = "bridge" }
  ipam = {
    whereabouts = { range = "192.168.60.0/24", range_start = "192.168.60.20", range_end = "192.168.60.50", gateway = "192.168.60.1" }
  }
}
`, n)
	return b.String()
}

func nadManifest(i int) string {
	return fmt.Sprintf("apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: nad-%03d\n  namespace: default\nspec:\n  config: '%s'\n", i, nadJSON(i))
}

// expectNADs checks the count, and that the first and last hold the expected configuration.
func expectNADs(b *testing.B, kc *kubetest.Cluster, n int, way string) {
	list, err := kc.Dynamic.Resource(kubetest.NADs).Namespace("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != n {
		b.Fatalf("%s: %d NetworkAttachmentDefinitions, want %d", way, len(list.Items), n)
	}
	for _, u := range list.Items {
		var i int
		if _, err := fmt.Sscanf(u.GetName(), "nad-%d", &i); err != nil || (i != 0 && i != n-1) {
			continue
		}
		if got, _, _ := unstructured.NestedString(u.Object, "spec", "config"); got != nadJSON(i) {
			b.Fatalf("%s: %s holds\n%s\nwant\n%s", way, u.GetName(), got, nadJSON(i))
		}
	}
}

func writeFile(b *testing.B, path, content string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}
