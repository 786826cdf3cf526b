package bulk

import (
	"encoding/json"
	"fmt"

	"github.com/olivere/elastic/v7"
)

// Outcome is what to do with one item after a bulk response.
type Outcome int

const (
	// Done: stored (or already stored: a create that met its own _id).
	Done Outcome = iota
	// Retry: 429 or 5xx — send again after a backoff.
	Retry
	// Dead: any other 4xx — the document will never be accepted as is.
	Dead
)

func (o Outcome) String() string {
	return [...]string{"done", "retry", "dead"}[o]
}

// Classify decides an item's outcome from its status and error type.
func Classify(status int, errType string) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Done
	case status == 409 && errType == "version_conflict_engine_exception":
		// op_type create met a document with the same _id: it is a
		// re-send of a document already stored.
		return Done
	case status == 429 || status >= 500 || status == 0:
		return Retry
	}
	return Dead
}

// ItemResult is one item's response.
type ItemResult struct {
	Status  int
	ErrType string
	Error   json.RawMessage // the item's error object, for the dead-letter file
}

type summary struct {
	Errors bool            `json:"errors"`
	Items  json.RawMessage `json:"items"`
}

type fullItem struct {
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error,omitempty"`
}

// ParseResponse reads a bulk response for n items. When the response says
// errors:false every item is Done without reading the items.
func ParseResponse(body []byte, n int) (allOK bool, items []ItemResult, err error) {
	var s summary
	if err := json.Unmarshal(body, &s); err != nil {
		return false, nil, fmt.Errorf("bulk response is not JSON: %v", err)
	}
	if !s.Errors {
		return true, nil, nil
	}
	var raw []map[string]fullItem
	if err := json.Unmarshal(s.Items, &raw); err != nil {
		return false, nil, fmt.Errorf("bulk response items: %v", err)
	}
	if len(raw) != n {
		return false, nil, fmt.Errorf("bulk response has %d items for %d documents", len(raw), n)
	}
	items = make([]ItemResult, n)
	for i, m := range raw {
		for _, it := range m { // one key: the action
			items[i].Status = it.Status
			items[i].Error = it.Error
			if len(it.Error) > 0 {
				var d elastic.ErrorDetails
				if json.Unmarshal(it.Error, &d) == nil {
					items[i].ErrType = d.Type
				}
			}
		}
	}
	return false, items, nil
}
