package fakeflowker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// cursorTimeFormat is Flowker's pagination.SortTimeFormat.
const cursorTimeFormat = "2006-01-02T15:04:05.000Z"

// cursor is Flowker's opaque list cursor (base64 std of this JSON).
type cursor struct {
	ID         string `json:"id"`
	SortValue  string `json:"sv"`
	SortBy     string `json:"sb"`
	SortOrder  string `json:"so"`
	PointsNext bool   `json:"pn"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of strings and a bool always encodes

	return base64.StdEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("decode cursor base64: %w", err)
	}

	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil {
		return cursor{}, fmt.Errorf("decode cursor json: %w", err)
	}

	return c, nil
}

// sortKey is one item's value of the sort field: a time (Mongo Date,
// millisecond precision), a string, or null (a missing completedAt).
type sortKey struct {
	isTime bool
	null   bool
	t      time.Time
	s      string
}

func timeKey(t time.Time) sortKey { return sortKey{isTime: true, t: t} }

func optTimeKey(t *time.Time) sortKey {
	if t == nil {
		return sortKey{isTime: true, null: true}
	}

	return timeKey(*t)
}

func stringKey(s string) sortKey { return sortKey{s: s} }

// compare orders keys like MongoDB: null first, then by value.
func (k sortKey) compare(o sortKey) int {
	switch {
	case k.null && o.null:
		return 0
	case k.null:
		return -1
	case o.null:
		return 1
	case k.isTime:
		return k.t.Compare(o.t)
	default:
		return strings.Compare(k.s, o.s)
	}
}

func (k sortKey) cursorValue() string {
	switch {
	case k.null:
		return ""
	case k.isTime:
		return k.t.UTC().Format(cursorTimeFormat)
	default:
		return k.s
	}
}

type pageItem[T any] struct {
	id  string
	key sortKey
	v   T
}

// keyset is a decoded cursor position.
type keyset struct {
	id  string
	key sortKey
}

// paginate sorts items by (key, id) in the given direction, applies the
// keyset condition of an optional cursor (items whose key is null never
// match it, as with Mongo's $lt/$gt on a missing field), and cuts the page.
func paginate[T any](items []pageItem[T], asc bool, after *keyset, limit int) ([]pageItem[T], bool) {
	sort.SliceStable(items, func(i, j int) bool {
		c := items[i].key.compare(items[j].key)
		if c == 0 {
			c = strings.Compare(items[i].id, items[j].id)
		}

		if asc {
			return c < 0
		}

		return c > 0
	})

	if after != nil {
		kept := items[:0]

		for _, it := range items {
			if it.key.null || after.key.null {
				continue
			}

			c := it.key.compare(after.key)
			if asc && (c > 0 || (c == 0 && it.id > after.id)) {
				kept = append(kept, it)
			}

			if !asc && (c < 0 || (c == 0 && it.id < after.id)) {
				kept = append(kept, it)
			}
		}

		items = kept
	}

	hasMore := len(items) > limit
	if hasMore {
		items = items[:limit]
	}

	return items, hasMore
}

// nextCursorFor builds the cursor for the last item of a page.
func nextCursorFor[T any](page []pageItem[T], hasMore bool, sortBy, sortOrder string) string {
	if !hasMore || len(page) == 0 {
		return ""
	}

	last := page[len(page)-1]

	return encodeCursor(cursor{ID: last.id, SortValue: last.key.cursorValue(), SortBy: sortBy, SortOrder: sortOrder, PointsNext: true})
}

// parseTimeCursorValue mirrors pagination.ParseSortValue for time fields.
func parseTimeCursorValue(v string, emptyOK bool) (sortKey, error) {
	if v == "" {
		if !emptyOK {
			return sortKey{}, fmt.Errorf("invalid empty time value in cursor")
		}

		return timeKey(time.Time{}), nil
	}

	t, err := time.Parse(cursorTimeFormat, v)
	if err != nil {
		return sortKey{}, fmt.Errorf("invalid time value in cursor: %w", err)
	}

	return timeKey(t), nil
}

// msTime truncates to MongoDB's millisecond precision.
func msTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
