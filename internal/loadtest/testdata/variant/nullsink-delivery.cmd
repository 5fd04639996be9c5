go test -run '^$' -bench DeliveryNullsink -benchtime 2x ./sink/host/
