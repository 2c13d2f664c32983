@STRATA@ context @FIXTURES@/store docs:intro 1:usage docs:2 docs:blob docs:empty docs:odd docs:mixed notes:a:b
