package rawjson

import (
	"strconv"
	"time"
)

// Uint is strconv.ParseUint(string(raw), 10, 64), without copying raw when
// it is short enough that it cannot overflow.
func Uint(raw []byte) (uint64, error) {
	if len(raw) == 0 || len(raw) > 19 {
		return strconv.ParseUint(string(raw), 10, 64)
	}
	var n uint64
	for _, c := range raw {
		if !isDigit(c) {
			return strconv.ParseUint(string(raw), 10, 64)
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// Time is time.Parse(time.RFC3339Nano, string(b)), for the contents of a
// JSON string. The form every source writes, UTC with a "Z" and up to nine
// digits of fraction, is read in place; anything else goes to time.Parse.
func Time(b []byte) (time.Time, error) {
	if t, ok := utcTime(b); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, string(b))
}

// utcTime reads 2006-01-02T15:04:05[.999999999]Z; ok is false for any
// other form and for a date or time out of range, which time.Parse then
// judges.
func utcTime(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return t, false
	}
	ok = true
	num := func(from, to int) int {
		n := 0
		for _, c := range b[from:to] {
			ok = ok && isDigit(c)
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return t, false
		}
		nsec = num(20, len(b)-1)
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if !ok || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return t, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
