//! Typed schemas. The gRPC layer converts them to the protocol's; descriptions feed the docs.

use super::types::Type;
use super::value::Value;

#[derive(Clone, Debug)]
pub struct Schema {
    /// Bumped when the stored state's shape changes; see `Resource::upgrade_state`.
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(version: i64, block: Block) -> Schema {
        Schema { version, block }
    }
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    pub deprecated: bool,
}

impl Block {
    pub fn new(description: impl Into<String>) -> Block {
        Block { description: description.into(), ..Block::default() }
    }
    pub fn attribute(mut self, a: Attribute) -> Block {
        self.attributes.push(a);
        self
    }
    pub fn block(mut self, b: NestedBlock) -> Block {
        self.blocks.push(b);
        self
    }

    pub fn value_type(&self) -> Type {
        let mut attrs: Vec<(String, Type)> = self.attributes.iter().map(|a| (a.name.clone(), a.ty.clone())).collect();
        attrs.extend(self.blocks.iter().map(|b| (b.name.clone(), b.value_type())));
        Type::object(attrs)
    }

    pub fn find_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    pub fn find_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    /// Set by the provider only.
    Computed,
    /// Set by the user, or by the provider when the user does not.
    OptionalComputed,
}

impl Mode {
    pub fn is_computed(self) -> bool {
        matches!(self, Mode::Computed | Mode::OptionalComputed)
    }
}

/// A check on one attribute's known, non-null value, run at plan time.
#[derive(Clone, Debug)]
pub enum Validator {
    OneOf(Vec<&'static str>),
    IntBetween(i64, i64),
    LengthBetween(usize, usize),
    /// A regular expression the whole string must match, with a human description.
    Matches(&'static str, &'static str),
    /// An IPv4 or IPv6 address; the text says what the address is for, e.g. "the
    /// member's client and peer URLs listen on it" (empty: nothing added).
    IpAddress(&'static str),
    Custom(fn(&Value) -> Result<(), String>),
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub mode: Mode,
    pub sensitive: bool,
    /// A change to this attribute cannot be applied in place.
    pub requires_replace: bool,
    /// Planned when the config leaves an optional+computed attribute unset.
    pub default: Option<Value>,
    pub validators: Vec<Validator>,
    pub deprecated: bool,
    /// Write-only (protocol 6.10, Terraform 1.11+): the value reaches the provider in the
    /// configuration at plan and apply, and is null in every plan and state.
    pub write_only: bool,
    /// For a write-only attribute: what to use instead on a Terraform older than 1.11
    /// (which cannot keep it out of state), e.g. "give the key with `private_key_file`".
    pub write_only_instead: Option<String>,
}

impl Attribute {
    fn new(name: &str, ty: Type, mode: Mode) -> Attribute {
        Attribute {
            name: name.to_string(),
            ty,
            description: String::new(),
            mode,
            sensitive: false,
            requires_replace: false,
            default: None,
            validators: Vec::new(),
            deprecated: false,
            write_only: false,
            write_only_instead: None,
        }
    }
    pub fn required(name: &str, ty: Type) -> Attribute {
        Attribute::new(name, ty, Mode::Required)
    }
    pub fn optional(name: &str, ty: Type) -> Attribute {
        Attribute::new(name, ty, Mode::Optional)
    }
    pub fn computed(name: &str, ty: Type) -> Attribute {
        Attribute::new(name, ty, Mode::Computed)
    }
    pub fn optional_computed(name: &str, ty: Type) -> Attribute {
        Attribute::new(name, ty, Mode::OptionalComputed)
    }
    pub fn description(mut self, d: impl Into<String>) -> Attribute {
        self.description = d.into();
        self
    }
    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }
    pub fn requires_replace(mut self) -> Attribute {
        self.requires_replace = true;
        self
    }
    /// Never stored: see the field. Only for optional attributes; implies sensitive.
    pub fn write_only(mut self) -> Attribute {
        debug_assert!(
            self.mode == Mode::Optional || self.mode == Mode::Required,
            "write-only attributes cannot be computed"
        );
        self.write_only = true;
        self.sensitive = true;
        self
    }
    /// What to use instead of this write-only attribute where Terraform is older than
    /// 1.11 (said in the error that refuses it there).
    pub fn write_only_instead(mut self, instead: impl Into<String>) -> Attribute {
        self.write_only_instead = Some(instead.into());
        self
    }
    /// A default makes the attribute optional+computed: the plan shows the value used.
    pub fn default(mut self, v: impl Into<Value>) -> Attribute {
        self.default = Some(v.into());
        if self.mode == Mode::Optional {
            self.mode = Mode::OptionalComputed;
        }
        self
    }
    pub fn validate(mut self, v: Validator) -> Attribute {
        self.validators.push(v);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
    pub requires_replace: bool,
}

impl NestedBlock {
    pub fn new(name: &str, nesting: Nesting, block: Block) -> NestedBlock {
        NestedBlock { name: name.to_string(), nesting, block, min_items: 0, max_items: 0, requires_replace: false }
    }
    pub fn single(name: &str, block: Block) -> NestedBlock {
        NestedBlock::new(name, Nesting::Single, block)
    }
    pub fn list(name: &str, block: Block) -> NestedBlock {
        NestedBlock::new(name, Nesting::List, block)
    }
    pub fn items(mut self, min: i64, max: i64) -> NestedBlock {
        self.min_items = min;
        self.max_items = max;
        self
    }
    pub fn requires_replace(mut self) -> NestedBlock {
        self.requires_replace = true;
        self
    }

    pub fn value_type(&self) -> Type {
        let obj = self.block.value_type();
        match self.nesting {
            Nesting::Single => obj,
            Nesting::List => Type::list(obj),
            Nesting::Set => Type::set(obj),
            Nesting::Map => Type::map(obj),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_includes_nested_blocks() {
        let b = Block::new("x")
            .attribute(Attribute::required("name", Type::String))
            .block(NestedBlock::list("disk", Block::new("d").attribute(Attribute::required("size", Type::Number))))
            .block(NestedBlock::single("clone", Block::new("c").attribute(Attribute::optional("full", Type::Bool))));
        assert_eq!(
            b.value_type(),
            Type::object([
                ("name", Type::String),
                ("disk", Type::list(Type::object([("size", Type::Number)]))),
                ("clone", Type::object([("full", Type::Bool)])),
            ])
        );
    }

    #[test]
    fn default_makes_optional_computed() {
        let a = Attribute::optional("days", Type::Number).default(3650i64);
        assert_eq!(a.mode, Mode::OptionalComputed);
    }
}
