package jsonb

// render appends the rendering of the parsed document (root node 0). It walks the nodes
// iteratively, reusing c.stack: for an open container, frame.node is the container, count the
// members written so far and mstart the next array element's node.
func (c *Canonicalizer) render(dst, src []byte) []byte {
	c.stack = c.stack[:0]
	i := uint32(0) // node to render next
	for {
		nd := &c.nodes[i]
		switch nd.kind {
		case kindNull:
			dst = append(dst, "null"...)
		case kindFalse:
			dst = append(dst, "false"...)
		case kindTrue:
			dst = append(dst, "true"...)
		case kindNumber:
			tok := src[nd.off : nd.off+nd.n]
			if nd.flag&flagNormalize != 0 {
				dst = appendNormalized(dst, tok)
			} else {
				dst = append(dst, tok...)
			}
		case kindString:
			dst = c.appendStringNode(dst, src, nd)
		case kindArray:
			dst = append(dst, '[')
			if nd.n == 0 {
				dst = append(dst, ']')
				break
			}
			c.stack = append(c.stack, frame{node: i, count: 1, mstart: c.nodes[i+1].next})
			i++
			continue
		case kindObject:
			dst = append(dst, '{')
			if nd.n == 0 {
				dst = append(dst, '}')
				break
			}
			c.stack = append(c.stack, frame{node: i, count: 1})
			k := c.perm[nd.off]
			dst = c.appendStringNode(dst, src, &c.nodes[k])
			dst = append(dst, ':', ' ')
			i = k + 1
			continue
		}
		// The node at i is complete: move to the next sibling, closing finished containers.
		for {
			if len(c.stack) == 0 {
				return dst
			}
			f := &c.stack[len(c.stack)-1]
			cn := &c.nodes[f.node]
			if f.count == cn.n {
				if cn.kind == kindArray {
					dst = append(dst, ']')
				} else {
					dst = append(dst, '}')
				}
				c.stack = c.stack[:len(c.stack)-1]
				continue
			}
			dst = append(dst, ',', ' ')
			if cn.kind == kindArray {
				i = f.mstart
				f.mstart = c.nodes[i].next
			} else {
				k := c.perm[cn.off+f.count]
				dst = c.appendStringNode(dst, src, &c.nodes[k])
				dst = append(dst, ':', ' ')
				i = k + 1
			}
			f.count++
			break
		}
	}
}

func (c *Canonicalizer) appendStringNode(dst, src []byte, nd *node) []byte {
	dst = append(dst, '"')
	if nd.flag&flagEscaped != 0 {
		dst = appendEscaped(dst, c.arena[nd.off:nd.off+nd.n])
	} else {
		dst = append(dst, src[nd.off:nd.off+nd.n]...)
	}
	return append(dst, '"')
}

// appendEscaped appends s with `"`, `\` and U+0000-U+001F escaped as PostgreSQL's
// escape_json does; every other byte is copied.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}
