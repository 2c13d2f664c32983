cp -r @FIXTURES@/store store && printf 'a\000b\377' | @STRATA@ put store notes 12 - && @STRATA@ context store notes:12 && @STRATA@ cat store/notes.region 12 | od -An -tx1
