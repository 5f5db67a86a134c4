//! `kai chat`: talk to the running node's personas from the terminal. With a message it sends
//! it, streams the reply and exits (for scripts); without one it is a REPL with line editing
//! and history on a terminal (plain lines from a pipe) and `/commands` for threads, personas,
//! regenerating and exporting. Everything goes through the public `/chat/threads` API.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::Ctx;
use crate::client::NodeClient;
use crate::output::outln;

const HELP: &str = "\
Type a message and press Enter to send it. Commands:
  /new [TITLE]          start a new thread
  /threads [QUERY]      list your threads (matching QUERY in titles and messages)
  /thread ID            switch to a thread and show its recent messages
  /history              show the current thread's messages
  /persona [NAME]       show the personas, or switch this thread to NAME
  /title TITLE          rename this thread
  /regen                answer the last message again (a new branch)
  /export [md|json] [FILE]  print or save the thread
  /help                 this help
  /quit                 leave (Ctrl-D works too)";

/// What `kai chat` was asked to do.
pub struct ChatArgs {
    pub thread: Option<String>,
    pub persona: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
}

struct Session<'a> {
    ctx: &'a Ctx,
    client: NodeClient,
    thread: Option<Value>,
    persona: Option<String>,
}

/// Runs `kai chat`.
pub async fn run(ctx: &Ctx, args: ChatArgs) -> anyhow::Result<()> {
    let client = crate::secure::client(ctx)?;
    let mut s = Session { ctx, client, thread: None, persona: args.persona.clone() };
    if let Some(id) = &args.thread {
        s.switch(id).await?;
        if let Some(p) = &args.persona {
            s.set_persona(p).await?;
        }
    }
    if let Some(message) = args.message {
        if s.thread.is_none() {
            s.new_thread(args.title.as_deref()).await?;
        }
        return s.send(&message).await;
    }
    s.repl(args.title.as_deref()).await
}

fn thread_id(t: &Value) -> &str {
    t["id"].as_str().unwrap_or_default()
}

impl Session<'_> {
    async fn new_thread(&mut self, title: Option<&str>) -> anyhow::Result<()> {
        let mut body = json!({});
        if let Some(t) = title {
            body["title"] = json!(t);
        }
        if let Some(p) = &self.persona {
            body["persona"] = json!(p);
        }
        let t: Value = self.client.post("/chat/threads", &body).await?;
        if !self.ctx.json {
            eprintln!(
                "new thread {} ({}), persona {}",
                thread_id(&t),
                t["title"].as_str().unwrap_or(""),
                t["persona"].as_str().unwrap_or("")
            );
        }
        self.thread = Some(t);
        Ok(())
    }

    async fn switch(&mut self, id: &str) -> anyhow::Result<()> {
        let view: Value = self.client.get(&format!("/chat/threads/{id}")).await?;
        self.thread = Some(view["thread"].clone());
        Ok(())
    }

    fn current(&self) -> anyhow::Result<&str> {
        self.thread.as_ref().map(thread_id).context("no thread yet: send a message or /new")
    }

    /// Sends a message and streams the reply to stdout.
    async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        if self.thread.is_none() {
            self.new_thread(None).await?;
        }
        let id = self.current()?.to_owned();
        self.stream(&format!("/chat/threads/{id}/messages"), &json!({"content": text})).await
    }

    async fn stream(&mut self, path: &str, body: &Value) -> anyhow::Result<()> {
        let json_mode = self.ctx.json;
        let mut failure = None;
        let mut done = None;
        let mut wrote = false;
        self.client
            .post_sse(path, body, |event, data| match event {
                "delta" if !json_mode => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(data["text"].as_str().unwrap_or_default().as_bytes());
                    let _ = out.flush();
                    wrote = true;
                }
                "summary" if !json_mode => {
                    eprintln!(
                        "[older turns summarized: {}]",
                        data["content"].as_str().unwrap_or("")
                    );
                }
                "done" => done = Some(data),
                "error" => {
                    failure = Some(data["detail"].as_str().unwrap_or("the reply failed").to_owned())
                }
                _ => {}
            })
            .await?;
        if let Some(f) = failure {
            if wrote {
                outln!("");
            }
            bail!("{f}");
        }
        let reply =
            done.context("the reply stream ended early; the node keeps the reply: see /history")?;
        if json_mode {
            outln!("{}", serde_json::to_string(&reply)?);
        } else {
            if let Some(calls) = reply["tool_calls"].as_array()
                && (reply["content"].as_str().is_some_and(str::is_empty) || !wrote)
            {
                for c in calls {
                    outln!("[tool call {} {}]", c["name"].as_str().unwrap_or("?"), c["arguments"]);
                }
            }
            outln!("");
        }
        if let Some(t) = self.thread.as_mut() {
            t["head_id"] = reply["id"].clone();
        }
        Ok(())
    }

    async fn show_history(&self, last: usize) -> anyhow::Result<()> {
        let view: Value = self.client.get(&format!("/chat/threads/{}", self.current()?)).await?;
        let messages = view["messages"].as_array().cloned().unwrap_or_default();
        for m in messages.iter().skip(messages.len().saturating_sub(last)) {
            let who = match m["role"].as_str() {
                Some("assistant") => m["persona"].as_str().unwrap_or("assistant").to_owned(),
                Some(r) => r.to_owned(),
                None => "?".into(),
            };
            outln!("{who}> {}", m["content"].as_str().unwrap_or(""));
        }
        Ok(())
    }

    async fn set_persona(&mut self, name: &str) -> anyhow::Result<()> {
        let id = self.current()?.to_owned();
        let t: Value =
            self.client.patch(&format!("/chat/threads/{id}"), &json!({"persona": name})).await?;
        self.thread = Some(t);
        self.persona = Some(name.to_owned());
        Ok(())
    }

    /// Runs one `/command`; `Ok(false)` means quit.
    async fn command(&mut self, line: &str) -> anyhow::Result<bool> {
        let (cmd, rest) = line.split_once(' ').map_or((line, ""), |(c, r)| (c, r.trim()));
        let arg = (!rest.is_empty()).then_some(rest);
        match cmd {
            "/quit" | "/exit" | "/q" => return Ok(false),
            "/help" | "/?" => outln!("{HELP}"),
            "/new" => self.new_thread(arg).await?,
            "/threads" => {
                let path = match arg {
                    Some(q) => format!("/chat/threads?q={}", urlencode(q)),
                    None => "/chat/threads".into(),
                };
                let list: Value = self.client.get(&path).await?;
                for t in list["threads"].as_array().into_iter().flatten() {
                    let mark = if self.thread.as_ref().map(thread_id) == t["id"].as_str() {
                        "*"
                    } else {
                        " "
                    };
                    outln!(
                        "{mark} {}  {:<32} {:<12} {} messages",
                        thread_id(t),
                        t["title"].as_str().unwrap_or(""),
                        t["persona"].as_str().unwrap_or(""),
                        t["message_count"]
                    );
                }
            }
            "/thread" => {
                let id = arg.context("usage: /thread ID (see /threads)")?;
                self.switch(id).await?;
                self.show_history(6).await?;
            }
            "/history" => self.show_history(usize::MAX).await?,
            "/persona" | "/model" => match arg {
                Some(name) => {
                    self.set_persona(name).await?;
                    outln!("persona: {name}");
                }
                None => {
                    let models: Value = self.client.get("/v1/models").await?;
                    let current = self.thread.as_ref().and_then(|t| t["persona"].as_str());
                    for m in models["data"].as_array().into_iter().flatten() {
                        let mark = if m["id"].as_str() == current { "*" } else { " " };
                        outln!(
                            "{mark} {:<16} {}",
                            m["id"].as_str().unwrap_or(""),
                            m["description"].as_str().unwrap_or("")
                        );
                    }
                }
            },
            "/title" => {
                let title = arg.context("usage: /title TITLE")?;
                let id = self.current()?.to_owned();
                let t: Value = self
                    .client
                    .patch(&format!("/chat/threads/{id}"), &json!({"title": title}))
                    .await?;
                self.thread = Some(t);
            }
            "/regen" => {
                let id = self.current()?.to_owned();
                let view: Value = self.client.get(&format!("/chat/threads/{id}")).await?;
                let last = view["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .context("nothing to regenerate yet")?;
                let mid = last["id"].as_str().unwrap_or_default().to_owned();
                self.stream(&format!("/chat/threads/{id}/messages/{mid}/regenerate"), &json!({}))
                    .await?;
            }
            "/export" => {
                let mut parts = rest.split_whitespace();
                let format = match parts.next() {
                    None | Some("md" | "markdown") => "markdown",
                    Some("json") => "json",
                    Some(other) => bail!("unknown export format {other:?}: use md or json"),
                };
                let text = self
                    .client
                    .get_text(&format!("/chat/threads/{}/export?format={format}", self.current()?))
                    .await?;
                match parts.next() {
                    Some(file) => {
                        std::fs::write(file, &text)
                            .with_context(|| format!("cannot write {file}"))?;
                        outln!("saved {file}");
                    }
                    None => outln!("{text}"),
                }
            }
            other => bail!("unknown command {other}; /help lists them"),
        }
        Ok(true)
    }

    async fn handle(&mut self, line: &str) -> bool {
        let line = line.trim();
        if line.is_empty() {
            return true;
        }
        let result = if line.starts_with('/') {
            self.command(line).await
        } else {
            self.send(line).await.map(|()| true)
        };
        match result {
            Ok(go_on) => go_on,
            Err(e) => {
                eprintln!("error: {e:#}");
                true
            }
        }
    }

    async fn repl(&mut self, title: Option<&str>) -> anyhow::Result<()> {
        if self.thread.is_none() && title.is_some() {
            self.new_thread(title).await?;
        }
        if !std::io::stdin().is_terminal() {
            // From a pipe: one message or command per line.
            let lines: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
            for line in lines {
                if !self.handle(&line).await {
                    break;
                }
            }
            return Ok(());
        }
        eprintln!("kai chat: /help for commands, Ctrl-D to leave");
        let mut editor = rustyline::DefaultEditor::new()?;
        loop {
            let prompt = match &self.thread {
                Some(t) => format!("{}> ", t["persona"].as_str().unwrap_or("kai")),
                None => "you> ".to_owned(),
            };
            let line = tokio::task::block_in_place(|| editor.readline(&prompt));
            match line {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    if !self.handle(&line).await {
                        break;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => {}
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
