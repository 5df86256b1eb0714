// Renders lockd's /openapi.json as a reference page: no third-party code, no inline script,
// and every text from the document goes in through textContent, never as HTML.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete", "head"];

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return typeOf(schema.items) + "[]";
  return schema.type || "any";
}

function schemaLink(schema) {
  const name = typeOf(schema);
  if (schema && schema.$ref) return el("a", { href: "#schema-" + refName(schema.$ref) }, el("code", {}, name));
  return el("code", {}, name);
}

function parameters(list) {
  if (!list || list.length === 0) return null;
  const rows = list.map((p) =>
    el("tr", {},
      el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
      el("td", {}, p.in),
      el("td", {}, schemaLink(p.schema)),
      el("td", {}, p.description || (p.schema && p.schema.description) || "")));
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description"))),
    el("tbody", {}, ...rows));
}

function requestBody(body) {
  if (!body || !body.content) return null;
  const items = Object.entries(body.content).map(([type, media]) =>
    el("li", {}, el("code", {}, type), " ", schemaLink(media.schema),
      media.example !== undefined ? el("pre", {}, String(media.example)) : null));
  return el("div", {}, el("h4", {}, "Request body" + (body.required ? " (required)" : "")), el("ul", {}, ...items));
}

function responses(all) {
  const rows = Object.entries(all || {}).map(([status, response]) =>
    el("tr", {},
      el("td", {}, el("code", {}, status)),
      el("td", {}, response.description || ""),
      el("td", {}, ...Object.entries(response.content || {}).map(([type, media]) =>
        el("div", {}, el("code", {}, type), " ", schemaLink(media.schema))))));
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning"), el("th", {}, "body"))),
    el("tbody", {}, ...rows));
}

function operation(method, path, op) {
  const id = "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-");
  return el("section", { class: "operation", id },
    el("h3", {}, el("span", { class: "method " + method }, method.toUpperCase()), el("code", {}, path)),
    op.summary ? el("p", {}, op.summary) : null,
    op.description ? el("p", { class: "muted" }, op.description) : null,
    parameters(op.parameters),
    requestBody(op.requestBody),
    el("h4", {}, "Responses"),
    responses(op.responses));
}

function render(spec) {
  document.getElementById("title").textContent = (spec.info.title || "API") + " " + (spec.info.version || "");
  document.getElementById("summary").textContent = spec.info.summary || spec.info.description || "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, item[method]]);
    }
  }
  const main = document.getElementById("operations");
  const contents = el("ul");
  main.replaceChildren();
  for (const [tag, operations] of byTag) {
    main.append(el("h2", { id: "tag-" + tag }, tag));
    contents.append(el("li", {}, el("a", { href: "#tag-" + tag }, tag)));
    for (const [method, path, op] of operations) main.append(operation(method, path, op));
  }
  document.getElementById("contents").replaceChildren(contents);
  const schemas = Object.entries((spec.components && spec.components.schemas) || {});
  const holder = document.getElementById("schemas");
  for (const [name, schema] of schemas) {
    holder.append(el("details", { id: "schema-" + name }, el("summary", {}, el("code", {}, name)),
      el("pre", {}, JSON.stringify(schema, null, 2))));
  }
  document.getElementById("schemas-section").hidden = schemas.length === 0;
}

fetch("/openapi.json", { headers: { Accept: "application/json" } })
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("operations").replaceChildren(el("p", {}, "Could not load /openapi.json: " + error.message));
  });
