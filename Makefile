.PHONY: run test
run:   ## set up and run web + admin + worker + sandbox targets
	bin/run
test:  ## set up and run the test suite (DATABASE_URL selects the database)
	bin/test
