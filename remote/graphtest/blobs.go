package graphtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// blobStore keeps file content as immutable files under DATADIR/blobs/, one
// per distinct upload or import, named by a random id. Items refer to a blob
// by name; copies share the blob of their source, so a copy costs no bytes.
//
// Reference counts are held in memory: items take a reference when they are
// inserted or get new content (Server.insert, Server.touchContent) and drop
// it when removed or replaced; a copy job in flight pins its source blobs
// with ref/unref so that they outlive a deletion of the source. A blob whose
// count falls to zero becomes garbage: it is removed at once when the server
// does not persist (temporary data directory), otherwise by Save, after the metadata naming the blob is gone from disk. At load,
// every blob file that the loaded metadata does not name is removed (sweep),
// as are leftover temporary files.
//
// A blob just written (create, importFile, sparse, adopt) has no references
// until an item takes one; a caller that ends up not using it calls discard.
//
// Open blobs stay readable after removal (POSIX unlink semantics), so a
// download in progress is never cut short by a replacement.
type blobStore struct {
	dir string

	mu sync.Mutex
	// Guarded by mu (lock order: Server.mu, then blobStore.mu).
	refs      map[string]int
	garbage   map[string]bool
	immediate bool // remove garbage at once (no persistence)
}

// blobInfo is what the store knows about a blob's content.
type blobInfo struct {
	Name         string // "" for empty content (no file)
	Size         int64
	QuickXorHash string // base64
	SHA256       string // upper-case hex; "" when not computed (see shaLimit)
}

// shaLimit is the largest imported (seeded) file whose SHA-256 is computed:
// hashing holes costs the full length, and a 5 GiB sparse seed must take a
// moment. Bigger imports carry only quickXorHash, the one hash the contract
// guarantees (§2). Content that streams through the fake (uploads) always
// gets both hashes, since its bytes are read anyway.
const shaLimit = 256 << 20

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

const tmpPrefix = "tmp-"

// openBlobStore opens (creating if needed) the blob directory of dataDir.
func openBlobStore(dataDir string) (*blobStore, error) {
	dir := filepath.Join(dataDir, "blobs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &blobStore{dir: dir, refs: map[string]int{}, garbage: map[string]bool{}}, nil
}

func (b *blobStore) path(name string) string { return filepath.Join(b.dir, name) }

// open opens a blob for reading.
func (b *blobStore) open(name string) (*os.File, error) { return os.Open(b.path(name)) }

// ref takes a reference on a blob ("" is ignored).
func (b *blobStore) ref(name string) {
	if name == "" {
		return
	}
	b.mu.Lock()
	b.refs[name]++
	delete(b.garbage, name)
	b.mu.Unlock()
}

// unref drops a reference; at zero the blob becomes garbage.
func (b *blobStore) unref(name string) {
	if name == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs[name]--
	if b.refs[name] > 0 {
		return
	}
	delete(b.refs, name)
	if b.immediate {
		_ = os.Remove(b.path(name))
		return
	}
	b.garbage[name] = true
}

// discard removes a blob nobody references (a new blob that was not used).
func (b *blobStore) discard(name string) {
	if name == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs[name] == 0 {
		delete(b.garbage, name)
		_ = os.Remove(b.path(name))
	}
}

// takeGarbage returns the current garbage and forgets it. Save takes it
// (with Server.mu held) together with the metadata snapshot, and removes it
// once the snapshot, which no longer names these blobs, is on disk.
func (b *blobStore) takeGarbage() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.garbage))
	for n := range b.garbage {
		names = append(names, n)
	}
	b.garbage = map[string]bool{}
	return names
}

// returnGarbage puts back what takeGarbage returned (the save failed).
func (b *blobStore) returnGarbage(names []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		if b.refs[n] == 0 {
			b.garbage[n] = true
		}
	}
}

// removeIfUnreferenced removes the named blobs that nobody references.
func (b *blobStore) removeIfUnreferenced(names []string) {
	for _, n := range names {
		b.mu.Lock()
		if b.refs[n] == 0 {
			_ = os.Remove(b.path(n))
		}
		b.mu.Unlock()
	}
}

// reset sets the reference counts (after a load) and removes every blob file
// not in refs, and every temporary file.
func (b *blobStore) reset(refs map[string]int) error {
	b.mu.Lock()
	b.refs = refs
	b.garbage = map[string]bool{}
	b.mu.Unlock()
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if refs[e.Name()] > 0 {
			continue
		}
		_ = os.Remove(b.path(e.Name()))
	}
	return nil
}

// tempFile creates a temporary file in the blob directory (upload sessions
// stream their fragments into one); adopt turns it into a blob.
func (b *blobStore) tempFile() (*os.File, error) {
	return os.CreateTemp(b.dir, tmpPrefix+"*")
}

// adopt renames a finished temporary file into a blob with the given
// hashes. info.Name is set by adopt.
func (b *blobStore) adopt(tmpPath string, info blobInfo) (blobInfo, error) {
	if info.Size == 0 {
		_ = os.Remove(tmpPath)
		info.Name = ""
		return info, nil
	}
	info.Name = randomToken(16)
	if err := os.Rename(tmpPath, b.path(info.Name)); err != nil {
		return blobInfo{}, err
	}
	return info, nil
}

// create writes a blob from a stream, hashing it on the way. Empty content
// creates no file (creating files is the slow part of seeding).
func (b *blobStore) create(r io.Reader) (blobInfo, error) {
	var first [1]byte
	switch n, err := io.ReadFull(r, first[:]); {
	case n == 0 && err == io.EOF:
		var qx quickXor
		return blobInfo{QuickXorHash: qx.base64(), SHA256: shaHex(sha256.New())}, nil
	case err != nil:
		return blobInfo{}, err
	}
	r = io.MultiReader(bytes.NewReader(first[:]), r)
	f, err := b.tempFile()
	if err != nil {
		return blobInfo{}, err
	}
	var qx quickXor
	sh := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, &qx, sh), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return blobInfo{}, err
	}
	return b.adopt(f.Name(), blobInfo{Size: n, QuickXorHash: qx.base64(), SHA256: shaHex(sh)})
}

// sparse creates a blob of size bytes that are all zero except the last
// len(tail) ones, as a sparse file: it takes no time and no space.
func (b *blobStore) sparse(size int64, tail []byte) (blobInfo, error) {
	if int64(len(tail)) > size {
		return blobInfo{}, fmt.Errorf("tail of %d bytes does not fit in %d", len(tail), size)
	}
	f, err := b.tempFile()
	if err != nil {
		return blobInfo{}, err
	}
	off := size - int64(len(tail))
	err = f.Truncate(size)
	if err == nil && len(tail) > 0 {
		_, err = f.WriteAt(tail, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return blobInfo{}, err
	}
	var qx quickXor
	qx.writeAt(tail, off)
	qx.setLength(size)
	info := blobInfo{Size: size, QuickXorHash: qx.base64()}
	if size <= shaLimit {
		sh := sha256.New()
		if err := writeZeros(sh, off); err != nil {
			return blobInfo{}, err
		}
		sh.Write(tail)
		info.SHA256 = shaHex(sh)
	}
	return b.adopt(f.Name(), info)
}

// importFile creates a blob from a local file, keeping it sparse: only the
// data extents (SEEK_DATA/SEEK_HOLE) are read, hashed and written; holes stay
// holes in the blob.
func (b *blobStore) importFile(src string) (blobInfo, error) {
	in, err := os.Open(src)
	if err != nil {
		return blobInfo{}, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return blobInfo{}, err
	}
	size := st.Size()
	out, err := b.tempFile()
	if err != nil {
		return blobInfo{}, err
	}
	info, err := copyExtents(out, in, size)
	if err == nil {
		err = out.Truncate(size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out.Name())
		return blobInfo{}, err
	}
	return b.adopt(out.Name(), info)
}

// copyExtents copies the data extents of in (size bytes) to the same
// offsets of out and hashes them; SHA-256 only up to shaLimit.
func copyExtents(out, in *os.File, size int64) (blobInfo, error) {
	var qx quickXor
	var sh hash.Hash
	if size <= shaLimit {
		sh = sha256.New()
	}
	extents, err := dataExtents(in, size)
	if err != nil {
		return blobInfo{}, err
	}
	buf := make([]byte, 1<<20)
	var done int64 // bytes fed to sh so far
	for _, e := range extents {
		if sh != nil {
			if err := writeZeros(sh, e[0]-done); err != nil {
				return blobInfo{}, err
			}
		}
		for off := e[0]; off < e[1]; {
			n := int64(len(buf))
			if e[1]-off < n {
				n = e[1] - off
			}
			m, err := in.ReadAt(buf[:n], off)
			if m > 0 {
				if _, werr := out.WriteAt(buf[:m], off); werr != nil {
					return blobInfo{}, werr
				}
				qx.writeAt(buf[:m], off)
				if sh != nil {
					sh.Write(buf[:m])
				}
				off += int64(m)
			}
			if err == io.EOF {
				break // the file shrank under us
			}
			if err != nil {
				return blobInfo{}, err
			}
		}
		done = e[1]
	}
	qx.setLength(size)
	info := blobInfo{Size: size, QuickXorHash: qx.base64()}
	if sh != nil {
		if err := writeZeros(sh, size-done); err != nil {
			return blobInfo{}, err
		}
		info.SHA256 = shaHex(sh)
	}
	return info, nil
}

// dataExtents lists the [start, end) data ranges of f, using SEEK_DATA and
// SEEK_HOLE; where the file system does not support them, the whole file is
// one extent.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	if size == 0 {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return [][2]int64{{0, size}}, nil
	}
	var out [][2]int64
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		var pos int64
		for pos < size {
			start, err := syscall.Seek(int(fd), pos, seekData)
			if err != nil {
				if errors.Is(err, syscall.ENXIO) {
					return // only a hole remains
				}
				serr = err
				return
			}
			end, err := syscall.Seek(int(fd), start, seekHole)
			if err != nil {
				serr = err
				return
			}
			if end > size {
				end = size
			}
			if start >= end {
				return
			}
			out = append(out, [2]int64{start, end})
			pos = end
		}
	})
	if cerr != nil || serr != nil {
		if errors.Is(serr, syscall.EINVAL) || errors.Is(serr, syscall.EOPNOTSUPP) || cerr != nil {
			return [][2]int64{{0, size}}, nil
		}
		return nil, serr
	}
	return out, nil
}

// writeZeros writes n zero bytes to w.
func writeZeros(w io.Writer, n int64) error {
	if n <= 0 {
		return nil
	}
	zeros := make([]byte, min(n, 64<<10))
	for n > 0 {
		k := min(int64(len(zeros)), n)
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func shaHex(h hash.Hash) string { return strings.ToUpper(hex.EncodeToString(h.Sum(nil))) }
