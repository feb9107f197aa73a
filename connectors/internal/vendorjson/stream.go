package vendorjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// StreamList reads a JSON envelope object from r without holding it whole:
// the elements of its member named list go one by one to each (as raw
// documents of their own, not sharing memory with the body), in order,
// while its other members are returned in env. found reports whether the
// envelope has the list; a null list has no elements. It fails when r is
// not one JSON object (nothing but white space may follow it), when the
// list is neither an array nor null, when the list appears twice, or with
// each's first error. Errors name positions and members, never values.
func StreamList(r io.Reader, list string, each func(raw json.RawMessage) error) (env map[string]json.RawMessage, found bool, err error) {
	dec := json.NewDecoder(r)
	if err := delim(dec, '{', "the response is not a JSON object"); err != nil {
		return nil, false, err
	}
	env = map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false, err
		}
		key, ok := t.(string)
		if !ok {
			return nil, false, errors.New("the response's object has a key that is not a string")
		}
		if key != list {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, false, err
			}
			env[key] = v
			continue
		}
		if found {
			return nil, false, fmt.Errorf("the response has the list %s twice", list)
		}
		found = true
		if err := streamArray(dec, list, each); err != nil {
			return nil, false, err
		}
	}
	if err := delim(dec, '}', "the response's object does not end"); err != nil {
		return nil, false, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, false, errors.New("data after the response's object")
		}
		return nil, false, err
	}
	return env, found, nil
}

// streamArray reads the array (or null) at dec's position, each element to
// each.
func streamArray(dec *json.Decoder, list string, each func(json.RawMessage) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%s is not a list", list)
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := each(raw); err != nil {
			return err
		}
	}
	return delim(dec, ']', fmt.Sprintf("the list %s does not end", list))
}

// delim reads the token at dec's position, which must be d.
func delim(dec *json.Decoder, d json.Delim, msg string) error {
	t, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", msg, io.ErrUnexpectedEOF)
		}
		return err
	}
	if got, ok := t.(json.Delim); !ok || got != d {
		return errors.New(msg)
	}
	return nil
}
