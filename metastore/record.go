package metastore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// The on-disk form of an item: a compact binary record (about half the size
// of JSON, and no reflection), versioned by its first byte. The id and the
// parent's id are in the record's key (store.go) and are not repeated
// inside. Only encode and decode know the layout.
//
//	version (1 byte) | flags (uvarint) | size (varint) | childCount (uvarint)
//	name | driveId | eTag | cTag | quickXorHash | sha256 |
//	mimeType | package | webUrl          (each: uvarint length, bytes)
//	created | modified | fsCreated | fsModified
//	                                     (each: 0, or 1 + varint seconds + uvarint nanoseconds)
//	[version 2, flagRemote set: remoteDriveId | remoteId | remoteParentId | role
//	                                     (each: uvarint length, bytes)]
//
// Version 2 adds a shared-in item's remoteItem facet (a shortcut to a
// folder of another drive); version 1 records (without it) still decode.

const recordVersion = 2

const (
	flagFolder = 1 << iota
	flagRoot
	flagRemote   // the remote facet follows the times
	flagShortcut // remote.Item.Shortcut
)

// ErrCorrupt is wrapped by the errors of records that cannot be decoded.
var ErrCorrupt = errors.New("metastore: corrupt item record")

// encode appends the record of it to buf.
func encode(buf []byte, it *remote.Item) []byte {
	var flags uint64
	if it.IsFolder {
		flags |= flagFolder
	}
	if it.IsRoot {
		flags |= flagRoot
	}
	remoteFacet := it.RemoteDriveID != "" || it.RemoteID != "" || it.RemoteParentID != "" || it.Role != ""
	if remoteFacet {
		flags |= flagRemote
	}
	if it.Shortcut {
		flags |= flagShortcut
	}
	buf = append(buf, recordVersion)
	buf = binary.AppendUvarint(buf, flags)
	buf = binary.AppendVarint(buf, it.Size)
	buf = binary.AppendUvarint(buf, uint64(max(it.ChildCount, 0)))
	for _, s := range []string{it.Name, it.DriveID, it.ETag, it.CTag, it.QuickXorHash,
		it.SHA256, it.MimeType, it.Package, it.WebURL} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for _, t := range []time.Time{it.Created, it.Modified, it.FSCreated, it.FSModified} {
		if t.IsZero() {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, 1)
		buf = binary.AppendVarint(buf, t.Unix())
		buf = binary.AppendUvarint(buf, uint64(t.Nanosecond()))
	}
	if remoteFacet {
		for _, s := range []string{it.RemoteDriveID, it.RemoteID, it.RemoteParentID, string(it.Role)} {
			buf = binary.AppendUvarint(buf, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	return buf
}

// recordIsFolder reads the folder flag of a record without decoding it.
func recordIsFolder(v []byte) (bool, error) {
	if len(v) < 2 || v[0] < 1 || v[0] > recordVersion {
		return false, fmt.Errorf("%w: version or flags", ErrCorrupt)
	}
	flags, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return false, fmt.Errorf("%w: flags", ErrCorrupt)
	}
	return flags&flagFolder != 0, nil
}

// decoder reads a record; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// str copies a string out of the record (the database's memory is only
// valid during its transaction).
func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	if len(d.b) == 0 {
		d.err = ErrCorrupt
		return time.Time{}
	}
	present := d.b[0]
	d.b = d.b[1:]
	switch present {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= uint64(time.Second) {
			d.err = ErrCorrupt
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.err = ErrCorrupt
	return time.Time{}
}

// decode reads the record of the item id, child of parentID.
func decode(id, parentID string, b []byte) (*remote.Item, error) {
	if len(b) == 0 || b[0] < 1 || b[0] > recordVersion {
		return nil, fmt.Errorf("%w %q: unknown version", ErrCorrupt, id)
	}
	d := &decoder{b: b[1:]}
	flags := d.uvarint()
	it := &remote.Item{
		ID:         id,
		ParentID:   parentID,
		IsFolder:   flags&flagFolder != 0,
		IsRoot:     flags&flagRoot != 0,
		Size:       d.varint(),
		ChildCount: int(d.uvarint()),
	}
	for _, p := range []*string{&it.Name, &it.DriveID, &it.ETag, &it.CTag, &it.QuickXorHash,
		&it.SHA256, &it.MimeType, &it.Package, &it.WebURL} {
		*p = d.str()
	}
	for _, p := range []*time.Time{&it.Created, &it.Modified, &it.FSCreated, &it.FSModified} {
		*p = d.time()
	}
	it.Shortcut = flags&flagShortcut != 0
	if flags&flagRemote != 0 {
		var role string
		for _, p := range []*string{&it.RemoteDriveID, &it.RemoteID, &it.RemoteParentID, &role} {
			*p = d.str()
		}
		it.Role = remote.Role(role)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = ErrCorrupt
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w %q", d.err, id)
	}
	return it, nil
}
