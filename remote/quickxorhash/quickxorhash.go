// Package quickxorhash implements OneDrive's quickXorHash, the only content
// hash the service reports for every file on both Personal and Business
// drives (docs/graph-contract.md §9).
//
// Definition: a 160-bit accumulator A starts at zero; byte i of the input is
// rotated left by (11·i) mod 160 bits inside the 160-bit ring and XORed into
// A. The digest is A as 20 little-endian bytes (byte k holds bits 8k…8k+7)
// with the 64-bit little-endian input length XORed into bytes 12…19. The
// service shows it base64-encoded (28 characters).
//
// Because the shift of byte i depends only on i mod 160 and XOR is linear,
// every byte at positions i ≡ j (mod 160) lands at the same shift. Write
// therefore only folds the input into a 160-byte ring (eight bytes per XOR,
// never bit by bit); the rotations are applied once per ring slot when the
// digest is taken. The package imports only the standard library.
package quickxorhash

import (
	"encoding/base64"
	"encoding/binary"
	"hash"
)

const (
	// Size is the length of a digest in bytes.
	Size = 20
	// BlockSize is the hash's preferred write size in bytes.
	BlockSize = 64

	ringBytes = 160 // the shift of byte i repeats with period 160
	ringWords = ringBytes / 8
	shift     = 11
	widthBits = 160
)

// digest is the running state. ring holds, for each slot j in 0…159, the
// XOR of all input bytes at positions i ≡ j (mod 160), eight slots per
// little-endian word. pos is the slot of the next byte (= length mod 160).
type digest struct {
	ring   [ringWords]uint64
	pos    int
	length uint64
}

// New returns a new hash.Hash computing the quickXorHash.
func New() hash.Hash { return &digest{} }

// Sum returns the quickXorHash of data.
func Sum(data []byte) [Size]byte {
	var d digest
	_, _ = d.Write(data)
	return d.checkSum()
}

// Base64 returns the quickXorHash of data the way the service shows it.
func Base64(data []byte) string {
	s := Sum(data)
	return base64.StdEncoding.EncodeToString(s[:])
}

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return BlockSize }
func (d *digest) Reset()         { *d = digest{} }

// Write folds p into the ring. It never fails.
func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	d.length += uint64(n)
	pos := d.pos

	// Byte by byte up to a word boundary of the ring.
	for len(p) > 0 && pos%8 != 0 {
		d.ring[pos/8] ^= uint64(p[0]) << (8 * (pos % 8))
		p = p[1:]
		pos = (pos + 1) % ringBytes
	}
	// Word by word up to the start of the ring.
	for len(p) >= 8 && pos != 0 {
		d.ring[pos/8] ^= binary.LittleEndian.Uint64(p)
		p = p[8:]
		pos = (pos + 8) % ringBytes
	}
	// Whole rings.
	for len(p) >= ringBytes {
		r := &d.ring
		b := p[:ringBytes]
		r[0] ^= binary.LittleEndian.Uint64(b[0:])
		r[1] ^= binary.LittleEndian.Uint64(b[8:])
		r[2] ^= binary.LittleEndian.Uint64(b[16:])
		r[3] ^= binary.LittleEndian.Uint64(b[24:])
		r[4] ^= binary.LittleEndian.Uint64(b[32:])
		r[5] ^= binary.LittleEndian.Uint64(b[40:])
		r[6] ^= binary.LittleEndian.Uint64(b[48:])
		r[7] ^= binary.LittleEndian.Uint64(b[56:])
		r[8] ^= binary.LittleEndian.Uint64(b[64:])
		r[9] ^= binary.LittleEndian.Uint64(b[72:])
		r[10] ^= binary.LittleEndian.Uint64(b[80:])
		r[11] ^= binary.LittleEndian.Uint64(b[88:])
		r[12] ^= binary.LittleEndian.Uint64(b[96:])
		r[13] ^= binary.LittleEndian.Uint64(b[104:])
		r[14] ^= binary.LittleEndian.Uint64(b[112:])
		r[15] ^= binary.LittleEndian.Uint64(b[120:])
		r[16] ^= binary.LittleEndian.Uint64(b[128:])
		r[17] ^= binary.LittleEndian.Uint64(b[136:])
		r[18] ^= binary.LittleEndian.Uint64(b[144:])
		r[19] ^= binary.LittleEndian.Uint64(b[152:])
		p = p[ringBytes:]
	}
	// Remaining whole words, then bytes.
	for len(p) >= 8 {
		d.ring[pos/8] ^= binary.LittleEndian.Uint64(p)
		p = p[8:]
		pos = (pos + 8) % ringBytes
	}
	for _, b := range p {
		d.ring[pos/8] ^= uint64(b) << (8 * (pos % 8))
		pos = (pos + 1) % ringBytes
	}
	d.pos = pos
	return n, nil
}

// Sum appends the current digest to b without changing the state.
func (d *digest) Sum(b []byte) []byte {
	s := d.checkSum()
	return append(b, s[:]...)
}

// checkSum applies each ring slot's rotation and the length.
func (d *digest) checkSum() [Size]byte {
	var out [Size]byte
	for j := 0; j < ringBytes; j++ {
		v := byte(d.ring[j/8] >> (8 * (j % 8)))
		if v == 0 {
			continue
		}
		bit := (shift * j) % widthBits
		k, off := bit/8, bit%8
		out[k] ^= v << off
		if off != 0 {
			out[(k+1)%Size] ^= v >> (8 - off)
		}
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], d.length)
	for i := range l {
		out[Size-8+i] ^= l[i]
	}
	return out
}
