//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dockerTimeout bounds one docker or compose command.
const dockerTimeout = 2 * time.Minute

// runID tells this test run's images, projects and networks apart from
// those of runs beside it on the same daemon.
var runID = func() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// docker is how this machine runs containers: the compose command, once
// found.
var docker struct {
	once    sync.Once
	skip    string   // why the Docker tests cannot run here; empty if they can
	compose []string // "docker compose" or "docker-compose"
}

// detectDocker finds out, once, whether a Docker daemon answers and which
// compose command there is; it returns why the Docker tests cannot run, or
// "".
func detectDocker() string {
	docker.once.Do(func() {
		if runtime.GOOS != "linux" {
			docker.skip = "the tests reach the containers' addresses from the host, which only Linux allows"
			return
		}
		if out, err := dockerCmd(20*time.Second, "info", "--format", "{{.ServerVersion}}"); err != nil {
			docker.skip = fmt.Sprintf("no Docker daemon answers (docker info: %v: %s)", err, out)
			return
		}
		sweepStale()
		if _, err := dockerCmd(20*time.Second, "compose", "version"); err == nil {
			docker.compose = []string{"docker", "compose"}
		} else if _, err := exec.LookPath("docker-compose"); err == nil {
			docker.compose = []string{"docker-compose"}
		} else {
			docker.skip = "a Docker daemon answers, but neither `docker compose` nor docker-compose is installed"
		}
	})
	return docker.skip
}

// staleAfter is the age past which what an e2e run left on the daemon is
// removed by the next run: no run lasts that long (go test's default
// timeout is 10m), so only a run killed before its cleanup leaves it.
const staleAfter = 30 * time.Minute

// sweepStale removes the containers, networks and images of e2e runs that
// were killed before their cleanup ran.
func sweepStale() {
	old := func(created string) bool {
		// docker prints times as 2006-01-02 15:04:05.999999999 -0700 MST.
		f := strings.Fields(created)
		if len(f) < 3 {
			return false
		}
		at, err := time.Parse("2006-01-02 15:04:05 -0700", f[0]+" "+strings.SplitN(f[1], ".", 2)[0]+" "+f[2])
		return err == nil && time.Since(at) > staleAfter
	}
	sweep := func(list []string, rm ...string) {
		out, err := dockerCmd(time.Minute, list...)
		if err != nil {
			return
		}
		var ids []string
		for _, line := range strings.Split(out, "\n") {
			id, rest, _ := strings.Cut(line, "|")
			project, created, _ := strings.Cut(rest, "|")
			if strings.HasPrefix(project, "certmesh-e2e") && old(created) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			dockerCmd(dockerTimeout, append(rm, ids...)...)
		}
	}
	sweep([]string{"ps", "-a", "--format", `{{.ID}}|{{.Label "com.docker.compose.project"}}|{{.CreatedAt}}`}, "rm", "-f")
	sweep([]string{"network", "ls", "--format", `{{.ID}}|{{.Label "com.docker.compose.project"}}|{{.CreatedAt}}`}, "network", "rm")
	sweep([]string{"images", "--format", `{{.ID}}|{{.Repository}}|{{.CreatedAt}}`}, "rmi", "-f")
}

// requireDocker skips the test where no Docker daemon answers (or with
// -short), and returns the compose command.
func requireDocker(t testing.TB) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no Docker tests")
	}
	if why := detectDocker(); why != "" {
		t.Skip("skipping: " + why)
	}
	return docker.compose
}

// dockerCmd runs docker with args and returns its combined output.
func dockerCmd(timeout time.Duration, args ...string) (string, error) {
	return command(timeout, nil, "docker", args...)
}

// command runs name with args (and env added to the environment) and
// returns its combined output.
func command(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	}
	return strings.TrimSpace(out.String()), err
}

// images are the two images of this run, built once.
var images struct {
	once           sync.Once
	certmesh, echo string
	err            error
}

// removeImages deletes this run's images; TestMain calls it.
func removeImages() {
	if images.certmesh != "" {
		dockerCmd(dockerTimeout, "rmi", "-f", images.certmesh, images.echo)
	}
}

// dockerImages builds the certmesh and echo images FROM scratch, each from
// a context holding only its static binary and its Dockerfile, and returns
// their tags.
func dockerImages(t testing.TB) (certmesh, echo string) {
	t.Helper()
	bin, echoBin := certmeshBinary(t), goBuild(t, "./docker/echo")
	images.once.Do(func() {
		start := time.Now()
		for _, img := range []struct {
			tag        *string
			name       string
			bin        string
			dockerfile string
		}{
			{&images.certmesh, "certmesh-e2e", bin, "Dockerfile"},
			{&images.echo, "certmesh-e2e-echo", echoBin, "Dockerfile.echo"},
		} {
			ctx := filepath.Join(buildDir, "context-"+img.name)
			if err := os.MkdirAll(ctx, 0o755); err != nil {
				images.err = err
				return
			}
			if err := copyFile(img.bin, filepath.Join(ctx, filepath.Base(img.bin)), 0o755); err != nil {
				images.err = err
				return
			}
			if err := copyFile(filepath.Join(moduleRoot, "docker", img.dockerfile), filepath.Join(ctx, "Dockerfile"), 0o644); err != nil {
				images.err = err
				return
			}
			tag := img.name + ":" + runID
			if out, err := dockerCmd(dockerTimeout, "build", "-q", "-t", tag, ctx); err != nil {
				images.err = fmt.Errorf("docker build %s: %v\n%s", tag, err, out)
				return
			}
			*img.tag = tag
		}
		t.Logf("images %s and %s built in %v", images.certmesh, images.echo, time.Since(start).Round(time.Millisecond))
	})
	if images.err != nil {
		t.Fatal(images.err)
	}
	return images.certmesh, images.echo
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, mode)
}

// dockerCluster is docker/compose.yml's cluster, brought up under a
// project name and a /24 of its own.
type dockerCluster struct {
	bin, state, pkiDir string
	compose            []string // the compose command with its project and file
	env                []string
	net                string // the network's first three octets
	network            string // the Docker network's name
	roots              *x509.CertPool
	admin              tls.Certificate
	jwt                *jwtSigner
	tokenTool          string // docker/devtoken
	ctrls, routers     []*node
	ids                map[string]string // container id by node name
	ips                map[string]string // address by node name
}

// startDockerCluster builds the images, writes the PKI and the JWT signer,
// brings the compose cluster up and waits until every node is ready and
// sees every other. It skips the test where no Docker daemon answers.
func startDockerCluster(t *testing.T) *dockerCluster {
	t.Helper()
	compose := requireDocker(t)
	img, echoImg := dockerImages(t)
	d := &dockerCluster{bin: certmeshBinary(t), state: t.TempDir(), tokenTool: goBuild(t, "./docker/devtoken"),
		ids: make(map[string]string), ips: make(map[string]string)}
	d.pkiDir = filepath.Join(d.state, "pki")
	pkiInit(t, d.bin, d.pkiDir)
	d.roots = loadRoots(t, filepath.Join(d.pkiDir, "ca.pem"))
	d.admin = loadAdmin(t, d.pkiDir)
	if out, err := command(time.Minute, nil, d.tokenTool, "init", filepath.Join(d.state, "auth")); err != nil {
		t.Fatalf("devtoken init: %v\n%s", err, out)
	}
	d.jwt = loadJWTSigner(t, filepath.Join(d.state, "auth", "jwt.key"))
	for _, r := range regions {
		for _, n := range []string{controllerName(r), routerName(r)} {
			if err := os.MkdirAll(filepath.Join(d.state, "data", n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	project := "certmesh-e2e-" + runID + "-" + strconv.Itoa(int(projects.Add(1)))
	d.compose = append(append([]string(nil), compose...), "-p", project, "-f", filepath.Join(moduleRoot, "docker", "compose.yml"))
	t.Cleanup(func() { d.down(t) })

	start := time.Now()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		// A /24 of 172.28.0.0/16 that no other network on this daemon
		// holds: another run may be using the one picked before.
		n, _ := rand.Int(rand.Reader, big.NewInt(240))
		d.net = fmt.Sprintf("172.28.%d", 10+n.Int64())
		d.env = []string{
			"CERTMESH_NET=" + d.net, "CERTMESH_STATE=" + d.state,
			"CERTMESH_IMAGE=" + img, "CERTMESH_ECHO_IMAGE=" + echoImg,
			"CERTMESH_UID=" + strconv.Itoa(os.Getuid()), "CERTMESH_GID=" + strconv.Itoa(os.Getgid()),
		}
		var out string
		if out, err = d.composeRun("up", "-d"); err == nil {
			break
		}
		err = fmt.Errorf("compose up: %v\n%s", err, out)
		if !strings.Contains(out, "overlap") {
			t.Fatal(err)
		}
		d.composeRun("down", "-v", "--remove-orphans")
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range regions {
		ctrl := &node{name: controllerName(r), region: r, role: "controller"}
		d.place(ctrl, 10+i, "api", 8443, 9100)
		d.ctrls = append(d.ctrls, ctrl)
	}
	for i, r := range regions {
		edge := &node{name: routerName(r), region: r, role: "router"}
		d.place(edge, 20+i, "listen", 3022, 9101)
		d.routers = append(d.routers, edge)
	}
	for _, n := range d.all() {
		out, err := d.composeRun("ps", "-q", n.name)
		if err != nil || out == "" {
			t.Fatalf("compose ps -q %s: %v %s", n.name, err, out)
		}
		d.ids[n.name] = lastLine(out)
	}
	nets, err := dockerCmd(time.Minute, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", d.ids[d.ctrls[0].name])
	if err != nil || len(strings.Fields(nets)) != 1 {
		t.Fatalf("the network of %s: %v %q", d.ctrls[0].name, err, nets)
	}
	d.network = strings.TrimSpace(nets)
	up := time.Since(start)
	ready := d.waitReady(t, d.all()...)
	t.Logf("compose project %s on %s.0/24: up in %v, every node ready and seeing the others %v later",
		project, d.net, up.Round(time.Millisecond), ready.Round(time.Millisecond))
	return d
}

// projects numbers the compose projects of this run.
var projects atomic.Int64

// place sets a node's addresses: host .last of the network, the API or
// client listener on port, metrics on metricsPort, memberlist on 7946.
func (d *dockerCluster) place(n *node, last int, listener string, port, metricsPort int) {
	ip := fmt.Sprintf("%s.%d", d.net, last)
	d.ips[n.name] = ip
	addr := fmt.Sprintf("%s:%d", ip, port)
	if listener == "api" {
		n.api = addr
	} else {
		n.listen = addr
	}
	n.metrics = fmt.Sprintf("%s:%d", ip, metricsPort)
	n.mesh = ip + ":7946"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (d *dockerCluster) composeRun(args ...string) (string, error) {
	cmd := append(append([]string(nil), d.compose...), args...)
	return command(dockerTimeout, d.env, cmd[0], cmd[1:]...)
}

func (d *dockerCluster) all() []*node {
	return append(append([]*node(nil), d.ctrls...), d.routers...)
}

// waitReady waits until each of nodes answers /readyz and sees all six
// nodes alive.
func (d *dockerCluster) waitReady(t testing.TB, nodes ...*node) time.Duration {
	t.Helper()
	return waitFor(t, readyWithin, "containers ready", func() error {
		var errs []error
		for _, n := range nodes {
			if _, err := httpGet("http://" + n.metrics + "/readyz"); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
				continue
			}
			st, err := status(n.metrics)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
			} else if a := aliveMembers(st); a < 6 {
				errs = append(errs, fmt.Errorf("%s sees %d of 6 members alive", n.name, a))
			}
		}
		return errors.Join(errs...)
	})
}

// down prints the containers' logs if the test failed, then removes the
// project: containers, network and volumes.
func (d *dockerCluster) down(t testing.TB) {
	if t.Failed() {
		for _, n := range d.all() {
			if id := d.ids[n.name]; id != "" {
				out, _ := dockerCmd(time.Minute, "logs", "--tail", "150", id)
				t.Logf("---- %s (%s) log:\n%s", n.name, d.ips[n.name], out)
			}
		}
	}
	for _, id := range d.ids {
		dockerCmd(time.Minute, "unpause", id) // a paused container does not stop
	}
	if out, err := d.composeRun("down", "-v", "--remove-orphans", "-t", "1"); err != nil {
		t.Errorf("compose down: %v\n%s", err, out)
	}
}

// docker runs a docker command on node n's container.
func (d *dockerCluster) docker(t testing.TB, n *node, args ...string) {
	t.Helper()
	args = append(args, d.ids[n.name])
	if out, err := dockerCmd(time.Minute, args...); err != nil {
		t.Fatalf("docker %s (%s): %v\n%s", strings.Join(args, " "), n.name, err, out)
	}
}

func (d *dockerCluster) kill(t testing.TB, n *node)  { d.docker(t, n, "kill", "-s", "KILL") }
func (d *dockerCluster) start(t testing.TB, n *node) { d.docker(t, n, "start") }
func (d *dockerCluster) pause(t testing.TB, n *node) { d.docker(t, n, "pause") }
func (d *dockerCluster) resume(t testing.TB, n *node) {
	d.docker(t, n, "unpause")
}

// cut disconnects n from the network: it reaches no node, and the test
// cannot reach it.
func (d *dockerCluster) cut(t testing.TB, n *node) {
	d.docker(t, n, "network", "disconnect", d.network)
}

// heal connects n again, at its address.
func (d *dockerCluster) heal(t testing.TB, n *node) {
	d.docker(t, n, "network", "connect", "--ip", d.ips[n.name], d.network)
}

// token mints a token for subject with docker/devtoken, as a user of the
// compose cluster would.
func (d *dockerCluster) token(t testing.TB, subject string) string {
	t.Helper()
	out, err := command(time.Minute, nil, d.tokenTool, "mint", "--key", filepath.Join(d.state, "auth", "jwt.key"), subject)
	if err != nil {
		t.Fatalf("devtoken mint: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}
