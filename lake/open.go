package lake

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Open opens the lake at a URL: a directory path or file:///path (a Dir,
// created if missing), or s3://bucket/prefix?… (an S3, see OpenS3).
func Open(ctx context.Context, lakeURL string) (Store, error) {
	if IsRemote(lakeURL) {
		return OpenS3(ctx, lakeURL)
	}
	dir, err := LocalPath(lakeURL)
	if err != nil {
		return nil, err
	}
	return NewDir(dir)
}

// IsRemote reports whether the lake at lakeURL is in an object store rather
// than a local directory.
func IsRemote(lakeURL string) bool { return strings.HasPrefix(lakeURL, "s3://") }

// LocalPath is the directory of a local lake URL: a path, or file:///path.
func LocalPath(lakeURL string) (string, error) {
	switch {
	case lakeURL == "":
		return "", fmt.Errorf("no lake: set lake.url to a directory or s3://bucket/prefix")
	case strings.HasPrefix(lakeURL, "file:"):
		u, err := url.Parse(lakeURL)
		if err != nil {
			return "", fmt.Errorf("lake %q: %w", lakeURL, err)
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || u.RawQuery != "" {
			return "", fmt.Errorf("lake %q: a file URL is file:///absolute/path, on this machine, with no query", lakeURL)
		}
		return u.Path, nil
	case strings.Contains(lakeURL, "://"):
		return "", fmt.Errorf("lake %q: a lake is a directory path or s3://bucket/prefix, not %s", lakeURL, lakeURL[:strings.Index(lakeURL, "://")+3])
	}
	return lakeURL, nil
}
