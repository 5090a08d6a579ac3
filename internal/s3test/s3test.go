// Package s3test runs S3 servers for tests of the lake on s3://.
//
// Start runs a real versitygw (a separate process, the posix backend in a
// temporary directory, checking every request's signature) on a free port on
// 127.0.0.1. It needs the versitygw binary:
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// found through $SLUICE_VERSITYGW, PATH or $(go env GOPATH)/bin. Without it
// tests skip, unless SLUICE_INTEGRATION=1, where that is a failure.
//
// StartFake runs gofakes3 in this process: fast, for unit tests.
//
// Neither sets anything global: the caller sets the credentials in the
// environment with Setenv (t.Setenv) or passes Env to a child process.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// The fixed identity of the test servers.
const (
	AccessKey = "sluice-test-access"
	SecretKey = "sluice-test-secret-key-0123456789"
	Region    = "us-east-1"
	Bucket    = "sluice-lake"
	Prefix    = "lake"
)

// Server is a running S3 server with one bucket.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	Prefix   string // the lake's key prefix in URL, without slashes
	// URL is the lake URL: s3://Bucket/Prefix?endpoint=…&region=…&use_path_style=true
	URL string
	// Root is versitygw's posix directory: the bucket is Root/Bucket ("" for
	// the fake).
	Root string
	// Log holds versitygw's output, for failure messages.
	Log string

	t      testing.TB
	client *s3.Client
}

// Start runs versitygw with one bucket, stopped at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findVersitygw()
	if err != nil {
		if os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatalf("SLUICE_INTEGRATION=1 but %v", err)
		}
		t.Skipf("%v; set SLUICE_INTEGRATION=1 to make this a failure", err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--access", AccessKey, "--secret", SecretKey, "--region", Region, "--quiet"}
	var backend []string
	// The posix backend keeps object metadata in user xattrs; where the
	// temporary file system has none (tmpfs on older kernels, some overlays)
	// it keeps them in a sidecar directory instead.
	if err := syscall.Setxattr(root, "user.sluice.probe", []byte("1"), 0); err != nil {
		backend = []string{"posix", "--sidecar", filepath.Join(dir, "meta"), root}
		if err := os.Mkdir(filepath.Join(dir, "meta"), 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		_ = syscall.Removexattr(root, "user.sluice.probe")
		backend = []string{"posix", root}
	}
	logPath := filepath.Join(dir, "versitygw.log")
	var last error
	for range 3 { // the free port may be taken between Close and listen
		addr := freeAddr(t)
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append(append(args, "--port", addr), backend...)...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if last = waitListening(addr, exited); last != nil {
			stop()
			continue
		}
		t.Cleanup(stop)
		s := newServer(t, "http://"+addr, root, logPath)
		s.createBucket()
		return s
	}
	out, _ := os.ReadFile(logPath)
	t.Fatalf("versitygw (%s) did not start: %v\n%s", bin, last, out)
	return nil
}

// findVersitygw looks in $SLUICE_VERSITYGW, PATH and $(go env GOPATH)/bin.
func findVersitygw() (string, error) {
	if p := os.Getenv("SLUICE_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SLUICE_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gopath, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, or point SLUICE_VERSITYGW at the binary)")
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until addr accepts connections, or the process exits.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return errors.New("it exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after 15s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartFake runs gofakes3 in this process with one bucket, on 127.0.0.1.
// It does not check signatures.
func StartFake(t testing.TB) *Server {
	t.Helper()
	backend := s3mem.New()
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	s := newServer(t, ts.URL, "", "")
	s.createBucket()
	return s
}

func newServer(t testing.TB, endpoint, root, log string) *Server {
	s := &Server{Endpoint: endpoint, Bucket: Bucket, Prefix: Prefix, Root: root, Log: log, t: t}
	s.URL = s.LakeURL(Bucket, Prefix)
	s.client = s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	return s
}

// LakeURL is the lake URL of bucket and prefix on this server.
func (s *Server) LakeURL(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&use_path_style=true", bucket, prefix, s.Endpoint, Region)
}

func (s *Server) createBucket() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		s.t.Fatalf("create bucket %s on %s: %v%s", s.Bucket, s.Endpoint, err, s.logTail())
	}
}

func (s *Server) logTail() string {
	if s.Log == "" {
		return ""
	}
	b, _ := os.ReadFile(s.Log)
	return "\nversitygw: " + string(b)
}

// Env is the environment that gives the AWS SDK and the aws CLI this
// server's credentials, and nothing from the user's ~/.aws or an instance
// role.
func (s *Server) Env() []string {
	none := filepath.Join(os.TempDir(), "sluice-s3test-no-aws-config")
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env for the rest of the test with t.Setenv.
func (s *Server) Setenv(t testing.TB) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Keys lists the keys in the bucket under prefix (a full key prefix, not
// relative to Prefix), read with the server's own S3 API: what any client
// sees.
func (s *Server) Keys(prefix string) []string {
	s.t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			s.t.Fatalf("list s3://%s/%s: %v%s", s.Bucket, prefix, err, s.logTail())
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// Uploads lists the multipart uploads in progress in the bucket, by key:
// an upload that failed or was cancelled must have been aborted.
func (s *Server) Uploads() []string {
	s.t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket)})
	if err != nil {
		s.t.Fatalf("list uploads in s3://%s: %v%s", s.Bucket, err, s.logTail())
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}
