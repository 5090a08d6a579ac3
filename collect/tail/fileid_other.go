//go:build !unix

package tail

import (
	"errors"
	"os"
)

// fileID is a file's identity while it exists: device and inode.
type fileID struct{ dev, ino uint64 }

func idOf(os.FileInfo) (fileID, error) {
	return fileID{}, errors.New("following files needs device and inode numbers (Unix)")
}
