// Package rawjson reads and writes JSON in place, on the hot paths of
// capture and projection: it finds values in a document in one pass over
// its bytes without building a tree, and escapes strings like encoding/json
// does without reflection.
//
// # Contract
//
// What it reads is checked as it is read: a function that returns no error
// has seen valid JSON (RFC 8259) in every byte it returned or skipped, and
// the raw values it returns (Lookup, Member, Members, StringBytes) are slices
// of the input, not copies, unless a name or string held escapes. Documents nest at most [MaxDepth] levels below the value
// being read; deeper ones are errors. Fuzz tests hold each to the library
// it replaces: FuzzLookup Lookup (and the Members walk under it) to
// encoding/json, FuzzAppendString AppendString to json.Marshal,
// FuzzTimeValue and FuzzUintValue Time and Uint to time.Parse and
// strconv.ParseUint; FuzzDecoders in pkg/cdc holds the event decoder built
// on Members and String to a fastjson tree.
package rawjson
