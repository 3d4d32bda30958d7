package quickxorhash

import "encoding/binary"

// naiveSum is an independent, deliberately slow implementation of the
// definition (docs/graph-contract.md §9): every set bit of input byte i
// toggles bit (11·i + k) mod 160 of the accumulator, one bit at a time.
func naiveSum(data []byte) [Size]byte {
	var acc [160]bool
	for i, b := range data {
		base := (11 * i) % 160
		for k := 0; k < 8; k++ {
			if b>>k&1 == 1 {
				acc[(base+k)%160] = !acc[(base+k)%160]
			}
		}
	}
	var out [Size]byte
	for bit, set := range acc {
		if set {
			out[bit/8] |= 1 << (bit % 8)
		}
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(data)))
	for i := range l {
		out[12+i] ^= l[i]
	}
	return out
}

// pattern returns n bytes where byte i is i mod m.
func pattern(n, m int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % m)
	}
	return b
}
