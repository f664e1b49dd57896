// Mounts GraphiQL (served by this server, no CDN) on #graphiql, sending
// queries to its data-endpoint (/graphql) on this origin. Loaded by the page at GET /graphql;
// a separate file so the page's Content-Security-Policy allows no inline
// script.
(function () {
  "use strict";
  var container = document.getElementById("graphiql");
  var url = new URL(container.dataset.endpoint, window.location.href).href;
  var fetcher = GraphiQL.createFetcher({ url: url });
  var root = ReactDOM.createRoot(container);
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
      defaultQuery:
        "# Roster's GraphQL API. With authentication on, add a header\n" +
        '# {"Authorization": "Bearer <token>"} in the Headers tab below.\n' +
        "{\n  users(limit: 5) {\n    id\n    name\n    email\n    groups { name }\n  }\n}\n",
    }),
  );
})();
