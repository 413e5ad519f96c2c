"""Resources for the local broker (pom.xml, log4j2 and server.properties templates); no code."""
