//go:build unix

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/auth/devoidc"
)

// node is one controller or router as the test reaches it.
type node struct {
	name, region string
	role         string // "controller" or "router"
	api          string // controller: host:port of the HTTPS API
	listen       string // router: host:port of the client mTLS listener
	metrics      string // host:port of the plain-HTTP metrics listener
	mesh         string // host:port of memberlist
}

// proc is a node running as an OS process: `certmesh controller|router
// --config FILE`, its stdout and stderr appended to a log file.
type proc struct {
	*node
	bin, config, log string

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu; the last started
	done chan struct{} // guarded by mu; closed when cmd has exited
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running", p.name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== e2e: start %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.role, "--config", p.config)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== e2e: %s exited at %s: %v\n", p.name, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return fmt.Errorf("%s: not running", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// exited reports whether the last started process has exited; p.mu held.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL (after SIGCONT, should it be stopped) and waits for
// the process to be gone.
func (p *proc) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// procCluster is the three-region cluster as OS processes on 127.0.0.1,
// with a development OIDC issuer and a JWT signer in the test process and
// an echo upstream.
type procCluster struct {
	bin, dir, pkiDir string
	roots            *x509.CertPool
	admin            tls.Certificate
	oidc             *devoidc.Server
	jwt              *jwtSigner
	ctrls, routers   []*node
	procs            map[string]*proc
}

// startProcCluster writes the PKI and the configs, starts the six nodes
// and waits until every one is ready and sees the five others.
func startProcCluster(t *testing.T) *procCluster {
	t.Helper()
	c := &procCluster{bin: certmeshBinary(t), dir: t.TempDir(), procs: make(map[string]*proc)}
	c.pkiDir = filepath.Join(c.dir, "pki")
	pkiInit(t, c.bin, c.pkiDir)
	c.roots = loadRoots(t, filepath.Join(c.pkiDir, "ca.pem"))
	c.admin = loadAdmin(t, c.pkiDir)
	c.jwt = newJWTSigner(t, filepath.Join(c.dir, "auth", "jwt.pem"))
	var err error
	if c.oidc, err = devoidc.Start("127.0.0.1:0", devoidc.Config{Audience: jwtAudience}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.oidc.Close() })
	upstream := echoServer(t)

	ports := newPortPicker()
	var seeds []string
	for _, r := range regions {
		n := &node{name: controllerName(r), region: r, role: "controller",
			api: ports.addr(t), metrics: ports.addr(t), mesh: ports.addr(t)}
		c.ctrls = append(c.ctrls, n)
		seeds = append(seeds, n.mesh)
	}
	for _, r := range regions {
		c.routers = append(c.routers, &node{name: routerName(r), region: r, role: "router",
			listen: ports.addr(t), metrics: ports.addr(t), mesh: ports.addr(t)})
	}
	for _, n := range append(append([]*node(nil), c.ctrls...), c.routers...) {
		dir := filepath.Join(c.dir, "nodes", n.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte(c.config(n, seeds, upstream)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.procs[n.name] = &proc{node: n, bin: c.bin, config: cfg, log: filepath.Join(c.dir, n.name+".log")}
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if err := p.kill(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			c.printLogs(t)
		}
	})
	start := time.Now()
	for _, p := range c.procs {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	}
	c.waitReady(t, c.all()...)
	t.Logf("6 processes ready, each seeing the 5 others, %v after start", time.Since(start).Round(time.Millisecond))
	return c
}

// config renders a node's YAML configuration; paths are relative to the
// file, in dir/nodes/<name>/.
func (c *procCluster) config(n *node, seeds []string, upstream string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  name: %s\n  region: %s\n  data_dir: data\n", n.name, n.region)
	fmt.Fprintf(&b, "mesh:\n  bind: %s\n  join: [%s]\n  key_file: ../../pki/gossip.key\n  join_timeout: 2s\n", n.mesh, strings.Join(seeds, ", "))
	fmt.Fprintf(&b, "pki:\n  ca: ../../pki/ca.pem\n  cert: ../../pki/%[1]s/cert.pem\n  key: ../../pki/%[1]s/key.pem\n", n.name)
	fmt.Fprintf(&b, "metrics:\n  listen: %s\n", n.metrics)
	if n.role == "router" {
		fmt.Fprintf(&b, "listen: %s\nupstream: %s\nadmission:\n  mode: strict\n  pull_timeout: 2s\n", n.listen, upstream)
		return b.String()
	}
	fmt.Fprintf(&b, "api:\n  listen: %s\n  rate_limit: 0\n", n.api)
	fmt.Fprintf(&b, "auth:\n  oidc:\n    - issuer: %s\n      audience: %s\n", c.oidc.URL(), jwtAudience)
	fmt.Fprintf(&b, "  jwt:\n    - name: e2e\n      issuer: %s\n      audience: %s\n      keys_file: ../../auth/jwt.pem\n", jwtIssuer, jwtAudience)
	b.WriteString("certs:\n  ttl: 1h\n  rotation_grace: 5m\n")
	return b.String()
}

func (c *procCluster) all() []*node {
	return append(append([]*node(nil), c.ctrls...), c.routers...)
}

func (c *procCluster) node(name string) *node { return c.procs[name].node }

// waitReady waits until each of nodes answers /readyz and sees every node
// of the cluster alive.
func (c *procCluster) waitReady(t testing.TB, nodes ...*node) time.Duration {
	t.Helper()
	total := len(c.procs)
	return waitFor(t, readyWithin, "nodes ready", func() error {
		var errs []error
		for _, n := range nodes {
			if p := c.procs[n.name]; p.exitedNow() {
				t.Fatalf("%s exited:\n%s", n.name, tailFile(p.log, 4096))
			}
			if _, err := httpGet("http://" + n.metrics + "/readyz"); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
				continue
			}
			st, err := status(n.metrics)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
			} else if a := aliveMembers(st); a < total {
				errs = append(errs, fmt.Errorf("%s sees %d of %d members alive", n.name, a, total))
			}
		}
		return errors.Join(errs...)
	})
}

func (p *proc) exitedNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done != nil && p.exited()
}

// printLogs prints the tail of every node's log.
func (c *procCluster) printLogs(t testing.TB) {
	for _, name := range sortedKeys(c.procs) {
		t.Logf("---- %s log (%s):\n%s", name, c.procs[name].log, tailFile(c.procs[name].log, 12<<10))
	}
}

// portPicker hands out free loopback ports, each free for both TCP and
// UDP (memberlist listens on both), never the same twice in a run.
type portPicker struct{ used map[int]bool }

func newPortPicker() *portPicker { return &portPicker{used: make(map[int]bool)} }

func (pp *portPicker) addr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if pp.used[port] {
			continue
		}
		pp.used[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	t.Fatal("no free port for TCP and UDP")
	return ""
}
