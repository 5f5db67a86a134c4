//! The memory graph: entities (deduplicated per owner by normalized name and kind, and
//! mergeable), typed relations, mentions linking memories to entities, traversal to depth N,
//! graph expansion of search results, and extraction of entities and relations by a persona
//! whose JSON answer is parsed strictly (an answer that does not fit is refused whole).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kai_llm::{ChatRequest, Message};
use kai_store::{EntityRow, MemoryRow, RelationRow};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::index::Plan;
use super::types::{Caller, MemoryError, Result, SearchHit, Via};
use super::{Memory, Shelf, blocking, now_us};
use crate::llm::ModelError;

const MAX_NAME_CHARS: usize = 200;
const MAX_PROPERTIES_BYTES: usize = 4096;
/// Most entities / relations one extraction answer may carry.
pub const MAX_EXTRACTED_ENTITIES: usize = 32;
pub const MAX_EXTRACTED_RELATIONS: usize = 64;
/// Deepest traversal.
pub const MAX_DEPTH: usize = 5;
/// Most entities a traversal returns.
pub const MAX_GRAPH_NODES: usize = 500;

fn bad(msg: impl Into<String>) -> MemoryError {
    MemoryError::BadRequest(msg.into())
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The normalized form duplicates are detected by: trimmed, lower-case, single spaces.
pub fn normalize_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn check_name(name: &str) -> Result<()> {
    let n = name.trim().chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(bad(format!(
            "an entity name is 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

fn check_label(what: &str, s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(bad(format!("a {what} is 1 to 64 characters of a-z, 0-9, `_`, `-`")))
    }
}

fn check_properties(p: &Map<String, Value>) -> Result<()> {
    if Value::Object(p.clone()).to_string().len() > MAX_PROPERTIES_BYTES {
        return Err(bad(format!("properties are at most {MAX_PROPERTIES_BYTES} bytes of JSON")));
    }
    Ok(())
}

/// An entity as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub properties: Map<String, Value>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

impl From<EntityRow> for Entity {
    fn from(r: EntityRow) -> Self {
        let properties = match serde_json::from_str(&r.properties) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Self {
            id: r.id,
            name: r.name,
            kind: r.kind,
            properties,
            created_at_us: r.created_at_us,
            updated_at_us: r.updated_at_us,
        }
    }
}

/// A relation as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub id: String,
    pub source_id: String,
    pub target_id: String,
    pub rel_type: String,
    pub memory_id: Option<String>,
    pub properties: Map<String, Value>,
    pub created_at_us: i64,
}

impl From<RelationRow> for Relation {
    fn from(r: RelationRow) -> Self {
        let properties = match serde_json::from_str(&r.properties) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Self {
            id: r.id,
            source_id: r.source_id,
            target_id: r.target_id,
            rel_type: r.rel_type,
            memory_id: r.memory_id,
            properties,
            created_at_us: r.created_at_us,
        }
    }
}

/// A new entity (an existing one with the same normalized name and kind is reused).
#[derive(Debug, Clone)]
pub struct EntityInput {
    pub name: String,
    pub kind: String,
    pub properties: Map<String, Value>,
    /// Memories of the caller that mention it.
    pub memory_ids: Vec<String>,
}

/// One end of a new relation: an entity id, or a name (and kind) to find or create.
#[derive(Debug, Clone)]
pub enum EndRef {
    Id(String),
    Name { name: String, kind: String },
}

/// A new relation.
#[derive(Debug, Clone)]
pub struct RelationInput {
    pub source: EndRef,
    pub target: EndRef,
    pub rel_type: String,
    pub properties: Map<String, Value>,
    pub memory_id: Option<String>,
}

/// A subgraph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub entities: Vec<Entity>,
    pub relations: Vec<Relation>,
}

/// A strictly parsed extraction answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extraction {
    pub entities: Vec<ExtractedEntity>,
    #[serde(default)]
    pub relations: Vec<ExtractedRelation>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractedEntity {
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractedRelation {
    pub source: String,
    pub target: String,
    #[serde(rename = "type")]
    pub rel_type: String,
}

const EXTRACTION_PROMPT: &str = "Extract the named entities and the relations between them from the note the user sends. \
Answer with exactly one JSON object and nothing else, of this shape: \
{\"entities\": [{\"name\": \"…\", \"kind\": \"person\"}], \"relations\": [{\"source\": \"…\", \"target\": \"…\", \"type\": \"works_at\"}]}. \
kind is one of person, place, organization, project, event, concept, thing. type is a short snake_case verb phrase. \
source and target must be names from entities. Use names as they appear in the note. \
At most 32 entities and 64 relations; empty lists when there is nothing to extract.";

/// Parses an extraction answer: one JSON object (optionally in a single ```json fence) of the
/// prompt's shape, with valid names and kinds, relation ends among the entities, and within the
/// limits. Anything else is refused whole.
pub fn parse_extraction(answer: &str) -> Result<Extraction> {
    let mut body = answer.trim();
    if let Some(inner) = body.strip_prefix("```json").or_else(|| body.strip_prefix("```")) {
        body = inner
            .strip_suffix("```")
            .ok_or_else(|| bad("extraction answer: unclosed code fence"))?
            .trim();
    }
    let x: Extraction = serde_json::from_str(body)
        .map_err(|e| bad(format!("extraction answer is not the asked JSON: {e}")))?;
    if x.entities.len() > MAX_EXTRACTED_ENTITIES || x.relations.len() > MAX_EXTRACTED_RELATIONS {
        return Err(bad("extraction answer has too many entities or relations"));
    }
    let mut names = HashSet::new();
    for e in &x.entities {
        check_name(&e.name)?;
        check_label("kind", &e.kind)?;
        names.insert(normalize_name(&e.name));
    }
    for r in &x.relations {
        check_label("relation type", &r.rel_type)?;
        if !names.contains(&normalize_name(&r.source))
            || !names.contains(&normalize_name(&r.target))
        {
            return Err(bad(format!(
                "extraction answer: relation {:?} → {:?} names an entity it did not list",
                r.source, r.target
            )));
        }
    }
    Ok(x)
}

impl Memory {
    async fn own_entity(&self, caller: &Caller, id: &str) -> Result<EntityRow> {
        match self.store.entity(id).await? {
            Some(e) if e.owner == caller.owner => Ok(e),
            _ => Err(MemoryError::NotFound(format!("no entity {id:?}"))),
        }
    }

    async fn upsert_named(
        &self,
        owner: &str,
        name: &str,
        kind: &str,
        properties: &Map<String, Value>,
    ) -> Result<EntityRow> {
        check_name(name)?;
        check_label("kind", kind)?;
        check_properties(properties)?;
        let now = now_us();
        Ok(self
            .store
            .upsert_entity(&EntityRow {
                id: new_id("ent"),
                owner: owner.to_owned(),
                name: name.trim().to_owned(),
                norm: normalize_name(name),
                kind: kind.to_owned(),
                properties: Value::Object(properties.clone()).to_string(),
                created_at_us: now,
                updated_at_us: now,
            })
            .await?)
    }

    /// Adds (or finds) an entity and links the given memories to it.
    pub async fn add_entity(&self, caller: &Caller, input: EntityInput) -> Result<Entity> {
        for m in &input.memory_ids {
            self.get(caller, m).await?;
        }
        let row =
            self.upsert_named(&caller.owner, &input.name, &input.kind, &input.properties).await?;
        for m in &input.memory_ids {
            self.store.add_mentions(m, std::slice::from_ref(&row.id)).await?;
        }
        Ok(row.into())
    }

    async fn resolve_end(&self, caller: &Caller, end: &EndRef) -> Result<EntityRow> {
        match end {
            EndRef::Id(id) => self.own_entity(caller, id).await,
            EndRef::Name { name, kind } => {
                self.upsert_named(&caller.owner, name, kind, &Map::new()).await
            }
        }
    }

    /// Adds a typed relation (a repeated one is the same edge).
    pub async fn add_relation(&self, caller: &Caller, input: RelationInput) -> Result<Relation> {
        check_label("relation type", &input.rel_type)?;
        check_properties(&input.properties)?;
        if let Some(m) = &input.memory_id {
            self.get(caller, m).await?;
        }
        let source = self.resolve_end(caller, &input.source).await?;
        let target = self.resolve_end(caller, &input.target).await?;
        if source.id == target.id {
            return Err(bad("a relation joins two different entities"));
        }
        if let Some(m) = &input.memory_id {
            self.store.add_mentions(m, &[source.id.clone(), target.id.clone()]).await?;
        }
        let row = self
            .store
            .insert_relation(&RelationRow {
                id: new_id("rel"),
                owner: caller.owner.clone(),
                source_id: source.id,
                target_id: target.id,
                rel_type: input.rel_type,
                memory_id: input.memory_id,
                properties: Value::Object(input.properties).to_string(),
                created_at_us: now_us(),
            })
            .await?;
        Ok(row.into())
    }

    pub async fn entity(&self, caller: &Caller, id: &str) -> Result<Entity> {
        Ok(self.own_entity(caller, id).await?.into())
    }

    pub async fn delete_entity(&self, caller: &Caller, id: &str) -> Result<()> {
        self.own_entity(caller, id).await?;
        Ok(self.store.delete_entity(id).await?)
    }

    pub async fn delete_relation(&self, caller: &Caller, id: &str) -> Result<()> {
        match self.store.relation(id).await? {
            Some(r) if r.owner == caller.owner => Ok(self.store.delete_relation(id).await?),
            _ => Err(MemoryError::NotFound(format!("no relation {id:?}"))),
        }
    }

    /// Folds duplicate entities into `into` (relations and mentions move, properties merge).
    pub async fn merge_entities(
        &self,
        caller: &Caller,
        into: &str,
        from: &[String],
    ) -> Result<Entity> {
        if from.is_empty() || from.len() > 100 || from.iter().any(|f| f == into) {
            return Err(bad("merge 1 to 100 other entities into one"));
        }
        self.own_entity(caller, into).await?;
        for f in from {
            self.own_entity(caller, f).await?;
        }
        self.store.merge_entities(into, from, now_us()).await?;
        self.entity(caller, into).await
    }

    /// Entities matching `query` (by name).
    pub async fn entities(
        &self,
        caller: &Caller,
        query: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entity>> {
        let q = query.map(normalize_name);
        Ok(self
            .store
            .entities(&caller.owner, q.as_deref(), limit)
            .await?
            .into_iter()
            .map(Entity::from)
            .collect())
    }

    /// The subgraph around `start` (an entity id, or an exact name) to `depth` hops, following
    /// relations of `rel_type` only if given; without `start`, the caller's entities.
    pub async fn graph(
        &self,
        caller: &Caller,
        start: Option<&str>,
        depth: usize,
        rel_type: Option<&str>,
        limit: usize,
    ) -> Result<Graph> {
        if depth > MAX_DEPTH || !(1..=MAX_GRAPH_NODES).contains(&limit) {
            return Err(bad(format!("depth is 0 to {MAX_DEPTH}, limit 1 to {MAX_GRAPH_NODES}")));
        }
        if let Some(t) = rel_type {
            check_label("relation type", t)?;
        }
        let owner = &caller.owner;
        let mut entities: HashMap<String, EntityRow> = HashMap::new();
        let mut frontier: Vec<String> = match start {
            None => {
                for e in self.store.entities(owner, None, limit as u32).await? {
                    entities.insert(e.id.clone(), e);
                }
                let ids: Vec<String> = entities.keys().cloned().collect();
                let rels = self
                    .store
                    .relations_touching(owner, &ids, rel_type, (limit * 4) as u32)
                    .await?;
                let relations = rels
                    .into_iter()
                    .filter(|r| {
                        entities.contains_key(&r.source_id) && entities.contains_key(&r.target_id)
                    })
                    .map(Relation::from)
                    .collect();
                return Ok(sorted(Graph {
                    entities: entities.into_values().map(Entity::from).collect(),
                    relations,
                }));
            }
            Some(s) => {
                let found = match self.store.entity(s).await? {
                    Some(e) if e.owner == *owner => vec![e],
                    _ => {
                        let norm = normalize_name(s);
                        self.store
                            .entities(owner, Some(&norm), 50)
                            .await?
                            .into_iter()
                            .filter(|e| e.norm == norm)
                            .collect()
                    }
                };
                if found.is_empty() {
                    return Err(MemoryError::NotFound(format!("no entity {s:?}")));
                }
                found
                    .into_iter()
                    .map(|e| {
                        let id = e.id.clone();
                        entities.insert(id.clone(), e);
                        id
                    })
                    .collect()
            }
        };
        let mut relations: HashMap<String, RelationRow> = HashMap::new();
        for _ in 0..depth {
            if frontier.is_empty() || entities.len() >= limit {
                break;
            }
            let rels = self
                .store
                .relations_touching(owner, &frontier, rel_type, (limit * 4) as u32)
                .await?;
            let mut next = Vec::new();
            for r in rels {
                for end in [&r.source_id, &r.target_id] {
                    if !entities.contains_key(end)
                        && !next.contains(end)
                        && entities.len() + next.len() < limit
                    {
                        next.push(end.clone());
                    }
                }
                relations.insert(r.id.clone(), r);
            }
            for e in self.store.entities_by_id(&next).await? {
                entities.insert(e.id.clone(), e);
            }
            frontier = next;
        }
        let relations = relations
            .into_values()
            .filter(|r| entities.contains_key(&r.source_id) && entities.contains_key(&r.target_id))
            .map(Relation::from)
            .collect();
        Ok(sorted(Graph {
            entities: entities.into_values().map(Entity::from).collect(),
            relations,
        }))
    }

    /// Adds to `hits` up to `k` memories that mention entities mentioned by, or related to the
    /// entities of, the hits (all still passing `plan`).
    pub(super) async fn expand(
        &self,
        shelf: &Arc<Shelf>,
        plan: &Plan,
        hits: &mut Vec<SearchHit>,
        k: usize,
    ) -> Result<()> {
        let ids: Vec<String> = hits.iter().map(|h| h.memory.id.clone()).collect();
        let mut seeds: Vec<String> =
            self.store.mentions_of(&ids).await?.into_iter().map(|(_, e)| e).collect();
        seeds.sort();
        seeds.dedup();
        if seeds.is_empty() {
            return Ok(());
        }
        let mut around = seeds.clone();
        for r in self.store.relations_touching(&plan.owner, &seeds, None, 200).await? {
            around.push(r.source_id);
            around.push(r.target_id);
        }
        around.sort();
        around.dedup();
        let nums = self.store.memories_mentioning(&around, (k * 4) as u32).await?;
        let present: HashSet<String> = ids.into_iter().collect();
        let (s, p) = (shelf.clone(), plan.clone());
        let visible: Vec<i64> = blocking(move || {
            let ix = s.read();
            Ok(nums.into_iter().filter(|n| ix.visible(&p, *n as u64)).collect())
        })
        .await?;
        let rows: Vec<MemoryRow> = self.store.memories_by_num(&visible).await?;
        let mut added = 0;
        for num in visible {
            let Some(row) = rows.iter().find(|r| r.num == num) else { continue };
            if added >= k || present.contains(&row.id) || row.owner != plan.owner {
                continue;
            }
            hits.push(SearchHit {
                memory: self.view_of(row).await?,
                score: 0.0,
                vector: None,
                text: None,
                via: Via::Graph,
            });
            added += 1;
        }
        Ok(())
    }

    /// Asks the extraction persona for the entities and relations of `row` and stores them;
    /// returns how many entities it named.
    pub(super) async fn extract_from(&self, row: &MemoryRow) -> Result<usize> {
        let Some(name) = &self.settings.extraction_persona else { return Ok(0) };
        let (persona, provider) = self.llm.persona(name).await?;
        let text = self.view_of(row).await?.text;
        let mut request =
            ChatRequest::new(vec![Message::system(EXTRACTION_PROMPT), Message::user(text)]);
        request.model = Some(persona.name.clone());
        request.params.temperature = Some(0.0);
        let resp = provider.chat(request).await.map_err(ModelError::from)?;
        let prices = self.llm.prices(&persona.name, &resp.model);
        crate::spend::record_usage(
            self.store.as_ref(),
            &row.owner,
            &persona.name,
            &resp.usage,
            prices,
        )
        .await;
        let x = parse_extraction(&resp.message.content)?;
        let mut by_name: HashMap<String, String> = HashMap::new();
        for e in &x.entities {
            let stored = self.upsert_named(&row.owner, &e.name, &e.kind, &Map::new()).await?;
            by_name.insert(normalize_name(&e.name), stored.id);
        }
        let ids: Vec<String> = by_name.values().cloned().collect();
        self.store.add_mentions(&row.id, &ids).await?;
        for r in &x.relations {
            let (Some(s), Some(t)) =
                (by_name.get(&normalize_name(&r.source)), by_name.get(&normalize_name(&r.target)))
            else {
                continue;
            };
            if s == t {
                continue;
            }
            self.store
                .insert_relation(&RelationRow {
                    id: new_id("rel"),
                    owner: row.owner.clone(),
                    source_id: s.clone(),
                    target_id: t.clone(),
                    rel_type: r.rel_type.clone(),
                    memory_id: Some(row.id.clone()),
                    properties: "{}".into(),
                    created_at_us: now_us(),
                })
                .await?;
        }
        Ok(x.entities.len())
    }
}

fn sorted(mut g: Graph) -> Graph {
    g.entities
        .sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
    g.relations.sort_by(|a, b| a.created_at_us.cmp(&b.created_at_us).then(a.id.cmp(&b.id)));
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_answers_are_parsed_strictly() {
        let good = r#"{"entities":[{"name":"Ada Lovelace","kind":"person"},{"name":"London","kind":"place"}],
                       "relations":[{"source":"ada lovelace","target":"London","type":"lived_in"}]}"#;
        let x = parse_extraction(good).unwrap();
        assert_eq!(x.entities.len(), 2);
        assert_eq!(x.relations[0].rel_type, "lived_in");
        assert_eq!(parse_extraction(&format!("```json\n{good}\n```")).unwrap(), x);
        assert!(parse_extraction(r#"{"entities":[]}"#).unwrap().relations.is_empty());
        for bad in [
            "Sure! Here are the entities: {}",
            r#"{"entities":[{"name":"A","kind":"person","age":3}]}"#,
            r#"{"entities":[{"name":"A","kind":"Person"}]}"#,
            r#"{"entities":[{"name":"","kind":"person"}]}"#,
            r#"{"entities":[{"name":"A","kind":"person"}],"relations":[{"source":"A","target":"B","type":"knows"}]}"#,
            r#"{"entities":[{"name":"A","kind":"person"},{"name":"B","kind":"person"}],"relations":[{"source":"A","target":"B","type":"Knows Well"}]}"#,
            r#"{"entities":[],"extra":1}"#,
            "```json\n{\"entities\":[]}",
        ] {
            assert!(parse_extraction(bad).is_err(), "accepted: {bad}");
        }
        let many: Vec<String> = (0..=MAX_EXTRACTED_ENTITIES)
            .map(|i| format!(r#"{{"name":"e{i}","kind":"thing"}}"#))
            .collect();
        assert!(parse_extraction(&format!(r#"{{"entities":[{}]}}"#, many.join(","))).is_err());
    }

    #[test]
    fn names_normalize() {
        assert_eq!(normalize_name("  Ada   LOVELACE "), "ada lovelace");
    }
}
