package issuer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
)

// crashChildEnv names the directory through which TestCrashChild, run as
// a separate process, talks with TestCrashDuringLoginBurst.
const crashChildEnv = "CERTMESH_ISSUER_CRASH_CHILD"

// jwtSigner is an external JWT signer for tests: a key pair and a
// keys_file holding its public half.
type jwtSigner struct {
	key      *ecdsa.PrivateKey
	keysFile string
}

func newJWTSigner(t testing.TB) *jwtSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &jwtSigner{key: key, keysFile: filepath.Join(t.TempDir(), "corp.pem")}
	writeTestFile(t, s.keysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return s
}

func (s *jwtSigner) config() auth.JWTConfig {
	return auth.JWTConfig{Name: "corp", Issuer: "corp", Audience: "certmesh", KeysFile: s.keysFile}
}

func (s *jwtSigner) token(t testing.TB, sub string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "corp", "aud": "certmesh", "sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCrashChild is the controller process that TestCrashDuringLoginBurst
// kills. It appends the seq of every record it publishes to dir/sent (one
// write per publish, so the file survives the process) and serves until
// killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashDuringLoginBurst")
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg config.Controller
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	sent, err := os.OpenFile(filepath.Join(dir, "sent"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := newFakeMesh(c.Store())
	m.onPublish = func(recs []crdt.Record) {
		var b bytes.Buffer
		for _, r := range recs {
			fmt.Fprintf(&b, "%d\n", r.Head().Seq)
		}
		if _, err := sent.Write(b.Bytes()); err != nil {
			panic(err)
		}
	}
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	info := c.Author().String() + " " + c.APIAddr()
	if err := os.WriteFile(filepath.Join(dir, "addr.tmp"), []byte(info), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "addr.tmp"), filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	select {} // until SIGKILL
}

// TestCrashDuringLoginBurst kills a controller process with SIGKILL in the
// middle of a burst of logins, then reopens its data directory: every
// acknowledged session and certificate is there, and the next seq is above
// every seq the process ever published.
func TestCrashDuringLoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	pkiDir := newPKI(t)
	signer := newJWTSigner(t)
	cfg := baseConfig(t, pkiDir, "c1")
	cfg.Auth.JWT = []auth.JWTConfig{signer.config()}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "config.json"), data)

	var childOut bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	var info []string
	testutil.Eventually(t, 30*time.Second, "the controller process to listen", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("controller process exited: %v\n%s", err, childOut.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		info = strings.Fields(string(b))
		return err == nil
	})
	author, err := crdt.ParseAuthor(info[0])
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + info[1]

	// A pool of tokens and CSRs, reused: the burst should be bound by the
	// controller, not by the test.
	e := &env{t: t, pkiDir: pkiDir}
	e.roots = loadRoots(t, pkiDir)
	var tokens, csrs []string
	for i := 0; i < 32; i++ {
		tokens = append(tokens, signer.token(t, fmt.Sprintf("user-%d", i)))
		_, csr := newCSR(t)
		csrs = append(csrs, csr)
	}
	type ack struct {
		session crdt.SessionID
		serial  crdt.Serial
	}
	var (
		mu     sync.Mutex
		acked  []ack
		killed atomic.Bool
		wg     sync.WaitGroup
	)
	const clients, killAfter = 16, 300
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			client := e.client()
			for n := 0; !killed.Load(); n++ {
				body, _ := json.Marshal(map[string]string{"token": tokens[(i+n)%len(tokens)], "csr": csrs[(i*7+n)%len(csrs)]})
				resp, err := client.Post(url+"/v1/sessions", "application/json", bytes.NewReader(body))
				if err != nil {
					return // the process is gone
				}
				var sr api.SessionResponse
				err = json.NewDecoder(resp.Body).Decode(&sr)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					if !killed.Load() {
						t.Errorf("login: %d %v", resp.StatusCode, err)
					}
					return
				}
				sid, err1 := crdt.ParseSessionID(sr.SessionID)
				serial, err2 := crdt.ParseSerial(sr.Serial)
				if err1 != nil || err2 != nil {
					t.Errorf("answer %+v", sr)
					return
				}
				mu.Lock()
				acked = append(acked, ack{sid, serial})
				n := len(acked)
				mu.Unlock()
				if n == killAfter && killed.CompareAndSwap(false, true) {
					// SIGKILL while the other clients' requests are in flight.
					if err := cmd.Process.Kill(); err != nil {
						t.Errorf("kill: %v", err)
					}
				}
			}
		}(i)
	}
	wg.Wait()
	<-exited
	exited <- nil // for the deferred cleanup
	if !killed.Load() {
		t.Fatalf("the burst ended before the kill\n%s", childOut.String())
	}

	f, err := os.Open(filepath.Join(dir, "sent"))
	if err != nil {
		t.Fatal(err)
	}
	var maxSent uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		seq, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("sent file: %q", sc.Text())
		}
		maxSent = max(maxSent, seq)
	}
	f.Close()

	c, err := Open(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if c.Author() != author {
		t.Errorf("author %v after the crash, was %v", c.Author(), author)
	}
	if c.NextSeq() <= maxSent {
		t.Errorf("next seq %d after the crash, but seq %d was published before it", c.NextSeq(), maxSent)
	}
	st := c.Store()
	lost := 0
	for _, a := range acked {
		_, okS := st.Session(a.session)
		cr, okC := st.Cert(a.serial)
		if !okS || !okC || cr.Session != a.session {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged logins lost in the crash", lost, len(acked))
	}
	if got := st.VersionVector()[author]; got+1 != c.NextSeq() {
		t.Errorf("own records contiguous up to %d, next seq %d", got, c.NextSeq())
	}
	t.Logf("%d logins acknowledged before the kill; %d published seqs, next seq %d, %d records on disk",
		len(acked), maxSent, c.NextSeq(), st.Len())
	// And the restarted controller writes above all of it.
	m := newFakeMesh(c.Store())
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	e.url = "https://" + c.APIAddr()
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": tokens[0], "csr": csr})
	if r.status != http.StatusCreated {
		t.Fatalf("login after restart: %d %s", r.status, r.body)
	}
	if seq := m.published[0].Head().Seq; seq <= maxSent {
		t.Errorf("first seq after restart %d reuses a published seq (max %d)", seq, maxSent)
	}
}

func loadRoots(t testing.TB, pkiDir string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(pkiDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(data)
	return p
}
