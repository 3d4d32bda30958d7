package graphtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// FormOptions choose, where the service answers the same request in more than
// one form (docs/graph-contract.md: the client accepts every form listed
// there, and the fake can produce each), which form the fake produces. The
// zero value is the fake's default form for each. Set them in Options.Forms,
// with SetForms, or at run time with `PUT /_fake/forms` (JSON, field names as
// in the tags below; PUT merges).
//
// The forms of the copy monitor are CopyOptions (MonitorStyle and the
// Monitor* fields) and the form of Retry-After is FaultOptions.RetryAfterForm,
// next to the knobs they belong with.
//
// A request is answered in the forms in force when it arrived, even if they
// change while it is being served.
type FormOptions struct {
	// DownloadIgnoresRange makes pre-authenticated download URLs ignore
	// Range and If-Range and answer 200 with the whole body, as the
	// service may (§3). Default: a Range is honoured (206, Content-Range).
	DownloadIgnoresRange bool `json:"downloadIgnoresRange"`
	// DownloadURLAnnotation is the property of a file item that carries its
	// pre-authenticated URL: "graph" (the default,
	// @microsoft.graph.downloadUrl) or "content" (@content.downloadUrl, the
	// direct OneDrive API's spelling, §1).
	DownloadURLAnnotation string `json:"downloadUrlAnnotation"`
	// InnerErrorSpelling is the key of the inner error in error bodies:
	// "innerError" (the default, Graph's spelling) or "innererror" (the
	// OneDrive documentation's, §7).
	InnerErrorSpelling string `json:"innerErrorSpelling"`
	// NestedInnerErrors moves an error's detail code (e.g.
	// nameContainsInvalidCharacters, fragmentOverlap) one level down, into
	// an inner error of the inner error, as the OneDrive documentation
	// allows (inner errors nest, §7); the outer inner error keeps date and
	// request ids and has no code. Default: the detail code is the inner
	// error's own code. [? which codes the service nests]
	NestedInnerErrors bool `json:"nestedInnerErrors"`
	// DeltaLinkForm is how delta's @odata.nextLink and @odata.deltaLink
	// carry their token: "query" (the default, …/delta?token=X, which
	// rclone relies on) or "path" (…/delta(token='X'), the documentation's
	// other form, §6). Requests are accepted in both forms either way.
	DeltaLinkForm string `json:"deltaLinkForm"`
	// DeltaParentPath makes the items of delta answers on a personal drive
	// carry parentReference.path, as personal drives have been seen to do
	// although the documentation says delta omits it (§6). Business drives
	// never send it, so the knob has no effect on them. Default: omitted.
	DeltaParentPath bool `json:"deltaParentPath"`
	// UploadCreatedStatus is the status of an upload (a simple PUT, or the
	// final fragment of an upload session) that created a new file: 201
	// (the default) or 200 (both occur, §3, §5).
	UploadCreatedStatus int `json:"uploadCreatedStatus"`
	// UploadReplacedStatus is the status of an upload that replaced the
	// content of an existing file: 200 (the default) or 201 (the documents
	// show 201 even for a replace, §3).
	UploadReplacedStatus int `json:"uploadReplacedStatus"`
	// SharedWithMeRetired makes GET /me/drive/sharedWithMe answer an empty
	// list: Microsoft deprecated it and announced it would stop returning
	// data after November 2026. Default: it lists what was shared.
	SharedWithMeRetired bool `json:"sharedWithMeRetired"`
}

// Values of the FormOptions string knobs.
const (
	annotationGraph   = "graph"
	annotationContent = "content"
	innerErrorGraph   = "innerError"
	innerErrorOD      = "innererror"
	deltaLinkQuery    = "query"
	deltaLinkPath     = "path"
)

func (o FormOptions) validate() error {
	switch o.DownloadURLAnnotation {
	case "", annotationGraph, annotationContent:
	default:
		return fmt.Errorf("downloadUrlAnnotation must be %q or %q, not %q", annotationGraph, annotationContent, o.DownloadURLAnnotation)
	}
	switch o.InnerErrorSpelling {
	case "", innerErrorGraph, innerErrorOD:
	default:
		return fmt.Errorf("innerErrorSpelling must be %q or %q, not %q", innerErrorGraph, innerErrorOD, o.InnerErrorSpelling)
	}
	switch o.DeltaLinkForm {
	case "", deltaLinkQuery, deltaLinkPath:
	default:
		return fmt.Errorf("deltaLinkForm must be %q or %q, not %q", deltaLinkQuery, deltaLinkPath, o.DeltaLinkForm)
	}
	for _, st := range []int{o.UploadCreatedStatus, o.UploadReplacedStatus} {
		switch st {
		case 0, http.StatusOK, http.StatusCreated:
		default:
			return fmt.Errorf("upload statuses must be 200 or 201, not %d", st)
		}
	}
	return nil
}

// uploadStatus is the status of an upload that created (or replaced) a file.
func (o FormOptions) uploadStatus(created bool) int {
	switch {
	case created && o.UploadCreatedStatus != 0:
		return o.UploadCreatedStatus
	case created:
		return http.StatusCreated
	case o.UploadReplacedStatus != 0:
		return o.UploadReplacedStatus
	}
	return http.StatusOK
}

// Forms returns the forms in force.
func (s *Server) Forms() FormOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Forms
}

// SetForms changes the forms of the answers to requests arriving from now on.
func (s *Server) SetForms(o FormOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Forms = o
	s.frontForms.Store(&o)
	return nil
}

// formsJSON has FormOptions' fields without its UnmarshalJSON method.
type formsJSON FormOptions

// UnmarshalJSON reads the fields named in the JSON; absent fields keep their
// value in o (decoding into the current options merges). Unknown fields and
// invalid values are an error.
func (o *FormOptions) UnmarshalJSON(b []byte) error {
	j := formsJSON(*o)
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	if err := FormOptions(j).validate(); err != nil {
		return err
	}
	*o = FormOptions(j)
	return nil
}

var _ json.Unmarshaler = (*FormOptions)(nil)

// requestInfo is what ServeHTTP records about a request before serving it:
// the base URL the client used, and the forms in force when it arrived.
type requestInfo struct {
	base  string
	forms FormOptions
}

type requestInfoKey struct{}

// withRequestInfo returns r carrying its requestInfo.
func (s *Server) withRequestInfo(r *http.Request) *http.Request {
	info := requestInfo{base: baseURL(r), forms: s.Forms()}
	return r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
}

// formsOf returns the forms a request is answered in.
func formsOf(r *http.Request) FormOptions {
	info, _ := r.Context().Value(requestInfoKey{}).(requestInfo)
	return info.forms
}
