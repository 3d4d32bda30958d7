package copyjob

import (
	"net/url"
	"sort"
	"strings"
)

// monitorHost returns the host of a pre-authenticated URL: the only part of it
// that may be logged.
func monitorHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable)"
	}
	return u.Host
}

// scrub removes secretURL from s, together with its path and query in every
// spelling an error message may use (Go's *url.Error quotes the whole URL;
// OneDrive Personal carries the token in the path, SharePoint in the query).
func scrub(s, secretURL string) string {
	if secretURL == "" {
		return s
	}
	parts := []string{secretURL}
	if u, err := url.Parse(secretURL); err == nil {
		parts = append(parts, u.String(), u.Redacted(), u.RawQuery, u.EscapedPath(), u.Path)
		if q, err := url.QueryUnescape(u.RawQuery); err == nil {
			parts = append(parts, q)
		}
	}
	sort.Slice(parts, func(i, j int) bool { return len(parts[i]) > len(parts[j]) })
	for _, p := range parts {
		// Short fragments ("/", "v=2.0") are not secrets, and replacing them
		// would mangle the message.
		if len(p) >= 8 {
			s = strings.ReplaceAll(s, p, "<monitor>")
		}
	}
	return s
}
