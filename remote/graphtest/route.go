package graphtest

import (
	"net/http"
	"net/url"
	"strings"
)

type routeKind int

const (
	routeUnknown  routeKind = iota
	routeOAuth              // /{tenant}/oauth2/v2.0/{endpoint}
	routeControl            // /_fake/{rest}
	routeDownload           // /download/{token}: pre-authenticated content URL
	routeUpload             // /upload/{session}: upload-session URL
	routeMonitor            // /monitor/{job}: copy monitor URL
	routeGraph              // /v1.0/...
)

// Operation names, used for the request counters at /_fake/stats and to
// target injected faults. Documented in README ("Fake server counters").
const (
	opOAuthDeviceCode  = "oauth.devicecode"
	opOAuthToken       = "oauth.token"
	opOAuthAuthorize   = "oauth.authorize"
	opOAuthDeviceLogin = "oauth.devicelogin" // the device flow's verification page (oauth.go)
	opControl          = "control"
	opDownload         = "download"        // GET on a pre-authenticated URL
	opUploadFragment   = "upload.fragment" // PUT on an upload-session URL
	opUploadStatus     = "upload.status"   // GET on an upload-session URL
	opUploadCancel     = "upload.cancel"   // DELETE on an upload-session URL
	opMonitor          = "monitor"
	opDriveGet         = "drive.get"
	opItemGet          = "item.get"
	opItemUpdate       = "item.update"
	opItemDelete       = "item.delete"
	opChildrenList     = "children.list"
	opFolderCreate     = "folder.create"
	opContentGet       = "content.get" // GET …/content → 302
	opContentPut       = "upload.simple"
	opUploadCreate     = "upload.create"
	opCopyStart        = "copy.start"
	opDelta            = "delta"
	opSearch           = "search"
	opUnknown          = "unknown"
)

// route is a parsed request path.
type route struct {
	kind routeKind
	op   string

	// OAuth: tenant and endpoint ("devicecode", "token", "authorize").
	tenant, endpoint string
	// Control, download, upload, monitor: the path after the prefix.
	rest string

	// Graph: the drive selector and the item address.
	me      bool   // /me/drive
	driveID string // /drives/{id} (as given)
	// driveOnly: the request addresses the drive itself (GET /me/drive).
	driveOnly bool
	// Item address: base is "root" or an item id (itemID); path holds the
	// decoded segments of a `:/a/b:` suffix relative to that base.
	itemID   string
	rootBase bool
	path     []string
	hasPath  bool
	// sub is what follows the item: "", "children", "content", "copy",
	// "createUploadSession", "delta", "search", "permanentDelete".
	sub string
	// searchQuery is q of search(q='…').
	searchQuery string

	// directory names a directory endpoint (/me, /me/drives, /sites…,
	// /shares…; sites.go), with its id in rest; "" for drive paths.
	directory string
	// user is the caller (from the token) and write whether the request
	// changes what it addresses; set by serveGraph (users.go).
	user  string
	write bool
}

// route parses r's path. It never fails: unknown shapes get kind routeUnknown
// or, for Graph paths, an empty item address that handlers answer with 400.
func (s *Server) route(r *http.Request) route {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/_fake/") || p == "/_fake":
		return route{kind: routeControl, op: opControl, rest: strings.TrimPrefix(strings.TrimPrefix(p, "/_fake"), "/")}
	case strings.HasPrefix(p, "/download/"):
		return route{kind: routeDownload, op: opDownload, rest: strings.TrimPrefix(p, "/download/")}
	case strings.HasPrefix(p, "/upload/"):
		op := opUploadFragment
		switch r.Method {
		case http.MethodGet:
			op = opUploadStatus
		case http.MethodDelete:
			op = opUploadCancel
		}
		return route{kind: routeUpload, op: op, rest: strings.TrimPrefix(p, "/upload/")}
	case p == "/devicelogin":
		return route{kind: routeOAuth, op: opOAuthDeviceLogin, endpoint: "devicelogin"}
	case strings.HasPrefix(p, "/monitor/"):
		return route{kind: routeMonitor, op: opMonitor, rest: strings.TrimPrefix(p, "/monitor/")}
	case strings.HasPrefix(p, "/v1.0/"):
		if rt, ok := parseDirectoryPath(strings.TrimPrefix(p, "/v1.0/")); ok {
			rt.kind = routeGraph
			return rt
		}
		rt := parseGraphPath(strings.TrimPrefix(p, "/v1.0/"))
		rt.kind = routeGraph
		rt.op = graphOp(r.Method, rt)
		return rt
	}
	// /{tenant}/oauth2/v2.0/{endpoint}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" {
		rt := route{kind: routeOAuth, tenant: parts[0], endpoint: parts[3]}
		switch parts[3] {
		case "devicecode":
			rt.op = opOAuthDeviceCode
		case "token":
			rt.op = opOAuthToken
		case "authorize":
			rt.op = opOAuthAuthorize
		default:
			rt.op = opUnknown
		}
		return rt
	}
	return route{kind: routeUnknown, op: opUnknown}
}

// parseGraphPath parses the escaped path after "/v1.0/":
//
//	me/drive[/ITEM[/SUB]]   drives/{id}[/ITEM[/SUB]]   drive[/ITEM[/SUB]] (legacy)
//	ITEM = root | items/{id} | root:/a/b[:] | items/{id}:/a/b[:]
//	SUB  = children | content | copy | createUploadSession | delta | search(q='x') | permanentDelete
//
// Path segments are percent-decoded, and an encoded slash (%2F) separates
// segments like a plain one, as the service accepts it.
func parseGraphPath(p string) route {
	var rt route
	switch {
	case p == "me/drive" || strings.HasPrefix(p, "me/drive/"):
		rt.me = true
		p = strings.TrimPrefix(strings.TrimPrefix(p, "me/drive"), "/")
	case p == "drive" || strings.HasPrefix(p, "drive/"):
		rt.me = true
		p = strings.TrimPrefix(strings.TrimPrefix(p, "drive"), "/")
	case strings.HasPrefix(p, "drives/"):
		p = strings.TrimPrefix(p, "drives/")
		id, rest, _ := strings.Cut(p, "/")
		rt.driveID, _ = url.PathUnescape(id)
		p = rest
	default:
		return rt
	}
	if p == "" {
		rt.driveOnly = true
		return rt
	}
	switch {
	case p == "root" || strings.HasPrefix(p, "root/") || strings.HasPrefix(p, "root:"):
		rt.rootBase = true
		p = strings.TrimPrefix(p, "root")
	case strings.HasPrefix(p, "items/"):
		p = strings.TrimPrefix(p, "items/")
		end := strings.IndexAny(p, "/:")
		if end < 0 {
			end = len(p)
		}
		rt.itemID, _ = url.PathUnescape(p[:end])
		if strings.EqualFold(rt.itemID, "root") {
			rt.itemID, rt.rootBase = "", true
		}
		p = p[end:]
	default:
		return rt
	}
	if strings.HasPrefix(p, ":") {
		p = p[1:]
		pathPart := p
		if i := strings.Index(p, ":"); i >= 0 {
			pathPart, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		decoded, err := url.PathUnescape(pathPart)
		if err != nil {
			decoded = pathPart
		}
		rt.hasPath = true
		for _, seg := range strings.Split(decoded, "/") {
			if seg != "" {
				rt.path = append(rt.path, seg)
			}
		}
	}
	p = strings.TrimPrefix(p, "/")
	switch {
	case strings.HasPrefix(p, "search(q="):
		rt.sub = "search"
		q := strings.TrimSuffix(strings.TrimPrefix(p, "search(q="), ")")
		q, _ = url.PathUnescape(q)
		rt.searchQuery = strings.Trim(q, "'")
	case strings.HasPrefix(p, "delta("):
		// delta(token='X') form: the token moves into the query by the handler.
		rt.sub = "delta"
		rt.rest = strings.TrimSuffix(strings.TrimPrefix(p, "delta("), ")")
	default:
		rt.sub = strings.TrimSuffix(p, "/")
	}
	return rt
}

func graphOp(method string, rt route) string {
	if rt.driveOnly {
		return opDriveGet
	}
	switch rt.sub {
	case "":
		switch method {
		case http.MethodPatch:
			return opItemUpdate
		case http.MethodDelete:
			return opItemDelete
		default:
			return opItemGet
		}
	case "children":
		if method == http.MethodPost {
			return opFolderCreate
		}
		return opChildrenList
	case "content":
		if method == http.MethodPut {
			return opContentPut
		}
		return opContentGet
	case "createUploadSession":
		return opUploadCreate
	case "copy":
		return opCopyStart
	case "delta":
		return opDelta
	case "search":
		return opSearch
	case "permanentDelete":
		return opItemDelete
	}
	return sharingOp(rt.sub)
}
