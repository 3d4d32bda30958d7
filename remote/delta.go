package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Delta (docs/graph-contract.md §6): GET …/root/delta pages through the
// changes since a token; the last page carries the @odata.deltaLink to resume
// from. Items come as their latest state (deleted ones with Deleted set and no
// path); an item may appear more than once (the last one wins).

// DeltaPage is the outcome of a delta enumeration.
type DeltaPage struct {
	Items     []*Item
	DeltaLink string // pass to Delta next time
}

// Delta enumerates changes. link is "" for a full enumeration from the
// start, "latest" for no changes but a link to start from now, a deltaLink
// saved from an earlier call, or a bare token (as DeltaToken extracts). It
// follows nextLinks to the deltaLink and returns every item.
//
// An expired link gives an *Error matching ErrResyncRequired whose Location
// is the link to enumerate afresh from ("" if the service gave none: then
// start over with "").
func (c *Client) Delta(ctx context.Context, link string) (*DeltaPage, error) {
	var items []*Item
	dl, err := c.DeltaPages(ctx, link, func(page []*Item) error {
		items = append(items, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &DeltaPage{Items: items, DeltaLink: dl}, nil
}

// DeltaPages is Delta calling fn with each page's items instead of
// collecting them (for large drives). An error from fn stops the
// enumeration and is returned. It returns the deltaLink.
func (c *Client) DeltaPages(ctx context.Context, link string, fn func(items []*Item) error) (string, error) {
	u, err := c.deltaURL(c.driveURL+"/root/delta", link)
	if err != nil {
		return "", err
	}
	return c.deltaPages(ctx, u, fn)
}

// FolderDelta is Delta for the subtree of one folder of this drive (with
// OnDrive: a folder others shared, which the delta of the user's own drive
// does not cover). Only Personal drives track folders on their own:
// Business drives and SharePoint libraries answer 400, which FolderDelta
// returns as an error matching ErrNotSupported (poll the folder's children
// instead, or the whole drive's delta where the user may read its root).
// A saved deltaLink (link) resumes, as for Delta.
func (c *Client) FolderDelta(ctx context.Context, folderID, link string) (*DeltaPage, error) {
	var items []*Item
	dl, err := c.FolderDeltaPages(ctx, folderID, link, func(page []*Item) error {
		items = append(items, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &DeltaPage{Items: items, DeltaLink: dl}, nil
}

// FolderDeltaPages is FolderDelta calling fn with each page's items
// instead of collecting them. It returns the deltaLink.
func (c *Client) FolderDeltaPages(ctx context.Context, folderID, link string, fn func(items []*Item) error) (string, error) {
	u, err := c.deltaURL(c.itemURL(folderID)+"/delta", link)
	if err != nil {
		return "", err
	}
	dl, err := c.deltaPages(ctx, u, fn)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusBadRequest && e.hasCode("invalidRequest") {
			return "", fmt.Errorf("%w: delta of a folder: %w", ErrNotSupported, err)
		}
		return "", err
	}
	return dl, nil
}

func (c *Client) deltaPages(ctx context.Context, u string, fn func(items []*Item) error) (string, error) {
	dl, err := c.pages(ctx, "delta", u, func(p *wirePage) error {
		items := make([]*Item, len(p.Value))
		for i := range p.Value {
			items[i] = p.Value[i].toItem()
		}
		return fn(items)
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Is(ErrResyncRequired) && e.Location != "" {
			if l, lerr := resolveLink(u, e.Location); lerr == nil {
				e.Location = l
			}
		}
		return "", err
	}
	if dl == "" {
		return "", fmt.Errorf("%w: delta: the last page has no deltaLink", ErrNotSupported)
	}
	return dl, nil
}

// deltaURL is the URL of a delta request on base (…/root/delta or
// …/items/{id}/delta) for link (see Delta).
func (c *Client) deltaURL(base, link string) (string, error) {
	switch {
	case link == "":
		return base, nil
	case link == "latest":
		return base + "?token=latest", nil
	case strings.HasPrefix(link, "http://") || strings.HasPrefix(link, "https://"):
		if err := c.sameHost(link); err != nil {
			return "", fmt.Errorf("remote: delta: %w", err)
		}
		return link, nil
	}
	return base + "?token=" + url.QueryEscape(link), nil
}

// DeltaToken returns the token of a delta link, in either form the service
// uses: …/delta?token=X or …/delta(token='X'). It returns "" when link has
// none.
func DeltaToken(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	if t := u.Query().Get("token"); t != "" {
		return t
	}
	p := u.Path
	i := strings.LastIndex(p, "(token=")
	if i < 0 || !strings.HasSuffix(p, ")") {
		return ""
	}
	return strings.Trim(p[i+len("(token="):len(p)-1], "'\"")
}
