//go:build unix

package tail

import (
	"fmt"
	"os"
	"syscall"
)

// fileID is a file's identity while it exists: device and inode.
type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) (fileID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no device and inode numbers", fi.Name())
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil // Dev is not uint64 on every Unix
}
