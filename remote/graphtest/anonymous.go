package graphtest

import (
	"context"
	"net/http"
)

// The service's front door refuses a Graph request that carries no token
// (401, "Access token is empty.") before anything else, whatever its
// drives are busy with: no fault is injected into it, no copy job moves,
// no lock is taken. So a client's reachability check, sent without a
// token (remote/unanswered.go), is answered at once even while a long
// request holds the fake's lock (the first page of a full delta over a
// million items takes seconds), as the service answers it while it
// computes such a page.

// refuseAnonymous answers a Graph request without a bearer token with 401
// and reports whether it did. It takes no lock of the server's.
func (s *Server) refuseAnonymous(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := bearerToken(r); ok {
		return false
	}
	rt := s.route(r)
	if rt.kind != routeGraph {
		return false
	}
	s.countRequest(rt.op)
	info := requestInfo{base: baseURL(r), forms: *s.frontForms.Load()}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	s.unauthorized(w, r, "Access token is empty.", `error="invalid_token", error_description="Access token is empty."`)
	return true
}
