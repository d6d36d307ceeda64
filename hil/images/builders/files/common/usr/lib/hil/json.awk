# Flatten a JSON document into "path<TAB>value" lines: object keys join with ".", array items use
# their index. With -v want=PATH, print only the values at PATH or below it, one per line.
# Small on purpose (the image has no python): escapes other than \" \\ \/ \n \t are kept as written.
{ text = text $0 "\n" }
END {
    pos = 1
    len = length(text)
    j_value("")
    j_skip()
    if (pos <= len) j_fail("trailing data")
}
function j_fail(why) {
    printf "json: %s at offset %d\n", why, pos > "/dev/stderr"
    exit 2
}
function j_skip() {
    while (pos <= len && index(" \t\r\n", substr(text, pos, 1))) pos++
}
function j_emit(path, v) {
    if (want == "") print path "\t" v
    else if (path == want || index(path, want ".") == 1) print v
}
function j_value(path,   c, start) {
    j_skip()
    c = substr(text, pos, 1)
    if (c == "{") j_object(path)
    else if (c == "[") j_array(path)
    else if (c == "\"") j_emit(path, j_string())
    else {
        start = pos
        while (pos <= len && !index(",]} \t\r\n", substr(text, pos, 1))) pos++
        if (pos == start) j_fail("value expected")
        j_emit(path, substr(text, start, pos - start))
    }
}
function j_object(path,   key, c) {
    pos++
    j_skip()
    if (substr(text, pos, 1) == "}") { pos++; return }
    for (;;) {
        j_skip()
        if (substr(text, pos, 1) != "\"") j_fail("key expected")
        key = j_string()
        j_skip()
        if (substr(text, pos, 1) != ":") j_fail("':' expected")
        pos++
        j_value(path == "" ? key : path "." key)
        j_skip()
        c = substr(text, pos, 1)
        pos++
        if (c == "}") return
        if (c != ",") j_fail("',' or '}' expected")
    }
}
function j_array(path,   i, c) {
    pos++
    j_skip()
    if (substr(text, pos, 1) == "]") { pos++; return }
    for (i = 0; ; i++) {
        j_value(path == "" ? i : path "." i)
        j_skip()
        c = substr(text, pos, 1)
        pos++
        if (c == "]") return
        if (c != ",") j_fail("',' or ']' expected")
    }
}
function j_string(   out, c) {
    pos++
    out = ""
    for (;;) {
        if (pos > len) j_fail("unterminated string")
        c = substr(text, pos, 1)
        pos++
        if (c == "\"") return out
        if (c == "\\") {
            c = substr(text, pos, 1)
            pos++
            if (c == "n") c = "\n"
            else if (c == "t") c = "\t"
            else if (c != "\"" && c != "\\" && c != "/") c = "\\" c
        }
        out = out c
    }
}
