package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
)

// PartSize is the size of the parts of a multipart upload. An object of
// this size or more is uploaded in parts (the AWS transfer manager's
// threshold is 16 MiB as well), which S3 assembles into one object only when
// the upload completes: a Put of any size is atomic.
const PartSize = 16 << 20

// S3 is a lake in an S3 bucket, under a key prefix, on AWS or any
// S3-compatible server. A Put is one PUT, or a multipart upload for large
// objects; either way readers see the whole object or none, and S3 has it
// durably once the request returns.
type S3 struct {
	bucket   *blob.Bucket
	where    string // s3://bucket/prefix/, for messages
	name     string // the bucket
	partSize int
}

// OpenS3 opens the lake at rawURL,
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true
//
// with the query parameters gocloud.dev's s3blob reads (endpoint, region,
// use_path_style, disable_https, profile, anonymous, …) and credentials from
// the standard AWS sources: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a
// profile, or the instance's role. It checks that the bucket exists and that
// the credentials may list it, so that a wrong URL or key fails at start.
func OpenS3(ctx context.Context, rawURL string) (*S3, error) {
	u, prefix, err := parseS3URL(rawURL)
	if err != nil {
		return nil, err
	}
	where := "s3://" + u.Host + "/" + prefix
	b, err := openBucket(ctx, u.Host, u.Query())
	if err != nil {
		// An unknown parameter or a bad value; the message names it.
		return nil, fmt.Errorf("lake %s: %w (lake.url takes endpoint, region, use_path_style, disable_https, profile, anonymous and gocloud.dev's other s3blob parameters)", where, err)
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix)
	}
	s := &S3{bucket: b, where: where, name: u.Host, partSize: PartSize}
	// The SDK retries a server it cannot reach for a while; a lake that
	// does not answer at start is a configuration error.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := b.IsAccessible(pctx)
	if err == nil && !ok {
		err = fmt.Errorf("bucket %q does not exist: create it (aws s3 mb s3://%s) or correct lake.url", s.name, s.name)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("lake %s: %w", where, s.explain(err))
	}
	return s, nil
}

// openBucket opens the bucket as s3blob.URLOpener does, reading the same
// query parameters, with one difference: the SDK does not log a warning each
// time it cannot check the checksum of an object uploaded in parts.
func openBucket(ctx context.Context, bucket string, q url.Values) (*blob.Bucket, error) {
	var opts s3blob.Options
	var clientOpts []func(*s3.Options)
	take := func(key string) string {
		v := q.Get(key)
		q.Del(key)
		return v
	}
	boolParam := func(key string, set func(*s3.Options, bool)) error {
		v := take(key)
		if v == "" {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value for %q: %w", key, err)
		}
		clientOpts = append(clientOpts, func(o *s3.Options) { set(o, b) })
		return nil
	}
	if v := take("ssetype"); v != "" {
		for _, t := range types.ServerSideEncryptionAes256.Values() {
			if strings.EqualFold(string(t), v) {
				opts.EncryptionType = t
			}
		}
		if opts.EncryptionType == "" {
			return nil, fmt.Errorf("%q is not a valid value for \"ssetype\"", v)
		}
	}
	opts.KMSEncryptionID = take("kmskeyid")
	for _, err := range []error{
		boolParam("accelerate", func(o *s3.Options, b bool) { o.UseAccelerate = b }),
		boolParam("disable_https", func(o *s3.Options, b bool) { o.EndpointOptions.DisableHTTPS = b }),
		boolParam("use_path_style", func(o *s3.Options, b bool) { o.UsePathStyle = b }),
		boolParam("s3ForcePathStyle", func(o *s3.Options, b bool) { o.UsePathStyle = b }),
	} {
		if err != nil {
			return nil, err
		}
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	clientOpts = append(clientOpts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	// The transfer manager takes the checksum setting from the bucket's
	// options, not the client's.
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, clientOpts...), bucket, &opts)
}

// parseS3URL splits s3://bucket/prefix?query into the URL and the key
// prefix, "" or ending in "/".
func parseS3URL(rawURL string) (*url.URL, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("lake %q: %w", rawURL, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("lake %q: %s; write s3://bucket/prefix?endpoint=…&region=…", rawURL, why)
	}
	switch {
	case u.Scheme != "s3":
		return nil, "", bad("not an s3:// URL")
	case u.User != nil:
		return nil, "", bad("credentials do not go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case u.Host == "":
		return nil, "", bad("no bucket")
	case u.Fragment != "":
		return nil, "", bad("a # fragment is not part of a lake URL")
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" {
		return u, "", nil
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, "", bad(fmt.Sprintf("the prefix %q has an empty, . or .. segment", prefix))
		}
	}
	return u, prefix + "/", nil
}

// String is the lake's location, s3://bucket/prefix/, without the query.
func (s *S3) String() string { return s.where }

// Close releases the bucket's resources.
func (s *S3) Close() error { return s.bucket.Close() }

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	// WriteAll aborts the upload when ctx ends or a part fails: no object,
	// and no parts left behind.
	err := s.bucket.WriteAll(ctx, key, data, &blob.WriterOptions{BufferSize: s.partSize, ContentType: contentType(key)})
	if err != nil {
		return fmt.Errorf("put %s%s: %w", s.where, key, s.explain(err))
	}
	return nil
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	}
	return "application/octet-stream"
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.bucket.ReadAll(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", s.where, key, s.explain(err))
	}
	return b, nil
}

// Open returns a reader of the object, for objects too large to hold in
// memory; an error wrapping ErrNotExist when absent.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s%s: %w", s.where, key, s.explain(err))
	}
	return r, nil
}

// List implements Store. Keys ending in "/" are the folder markers some
// tools create, not objects.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s%s: %w", s.where, prefix, s.explain(err))
		}
		if !strings.HasSuffix(obj.Key, "/") {
			out = append(out, obj.Key)
		}
	}
	// S3 lists in UTF-8 byte order already; s3blob's unescaping of unusual
	// keys can change that order, so the promise is kept here.
	slices.Sort(out)
	return out, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	err := s.bucket.Delete(ctx, key)
	if err != nil && !errors.Is(s.explain(err), ErrNotExist) {
		return fmt.Errorf("delete %s%s: %w", s.where, key, s.explain(err))
	}
	return nil
}

// explain turns an error of the S3 API into one that says what to do. A
// missing object wraps ErrNotExist; a missing bucket does not, so that a
// lake whose bucket is gone is never taken for an empty one.
func (s *S3) explain(err error) error {
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist: create it (aws s3 mb s3://%s) or correct lake.url: %w", s.name, s.name, err)
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound": // the latter: versitygw
		return fmt.Errorf("the server does not know the access key: check AWS_ACCESS_KEY_ID: %w", err)
	case code == "SignatureDoesNotMatch":
		return fmt.Errorf("the request signature does not match: check AWS_SECRET_ACCESS_KEY (and region): %w", err)
	case gcerrors.Code(err) == gcerrors.NotFound:
		return fmt.Errorf("%w (%v)", ErrNotExist, err)
	case gcerrors.Code(err) == gcerrors.PermissionDenied:
		return fmt.Errorf("access denied: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy: %w", err)
	case strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found"):
		return fmt.Errorf("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE): %w", err)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return fmt.Errorf("cannot reach the S3 endpoint (the endpoint parameter of lake.url): %w", err)
	}
	return err
}

// Stat tells whether an object exists, and when it was written.
func (s *S3) Stat(ctx context.Context, key string) (time.Time, bool, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("stat %s%s: %w", s.where, key, s.explain(err))
	}
	return a.ModTime, true, nil
}
