go test -run '^$' -bench WriteNullsink -benchtime 20x ./sink/
