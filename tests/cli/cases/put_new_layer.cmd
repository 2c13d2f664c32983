cp -r @FIXTURES@/store store && printf 'fresh text\n' | @STRATA@ put store docs 7 - --name seven --metadata '{"keywords":["new"],"frequency":2}' && @STRATA@ context store docs:seven
