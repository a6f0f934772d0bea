//! The two macros that turn the method lists into code.

/// Defines a method's argument struct and its wire codec from the spec's
/// field list, in wire order. `reserved name: Type` fields are read and
/// dropped on decode and written as zero/empty/false; they are not in the
/// struct. `bool` is the spec's `bit`: consecutive bits share an octet.
macro_rules! method_struct {
    ($(#[$attr:meta])* $name:ident { $($body:tt)* }) => {
        method_struct!(@munch [$(#[$attr])* $name] [] [] [] [] r w ; $($body)*);
    };
    (@munch $head:tt [$($field:tt)*] [$($read:tt)*] [$($write:tt)*] [$($n:ident)*] $r:ident $w:ident ;
        reserved $_res:ident : $t:ty , $($rest:tt)*) => {
        method_struct!(@munch $head [$($field)*]
            [$($read)* let _: $t = $crate::wire::Wire::read($r)?;]
            [$($write)* <$t as $crate::wire::Wire>::write(&<$t as Default>::default(), $w);]
            [$($n)*] $r $w ; $($rest)*);
    };
    (@munch $head:tt [$($field:tt)*] [$($read:tt)*] [$($write:tt)*] [$($n:ident)*] $r:ident $w:ident ;
        $(#[$fattr:meta])* $f:ident : $t:ty , $($rest:tt)*) => {
        method_struct!(@munch $head [$($field)* $(#[$fattr])* pub $f: $t,]
            [$($read)* let $f: $t = $crate::wire::Wire::read($r)?;]
            [$($write)* $crate::wire::Wire::write($f, $w);]
            [$($n)* $f] $r $w ; $($rest)*);
    };
    (@munch [$(#[$attr:meta])* $name:ident] [$($field:tt)*] [$($read:tt)*] [$($write:tt)*] [$($n:ident)*] $r:ident $w:ident ;) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name { $($field)* }

        impl $name {
            pub(crate) fn read_args($r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::DecodeError> {
                $($read)*
                Ok($name { $($n),* })
            }

            pub(crate) fn write_args(&self, $w: &mut $crate::wire::Writer<'_>) {
                let $name { $($n),* } = self;
                $($write)*
            }
        }
    };
}

/// Defines `Method` from the list of methods with arguments (`structs`)
/// and of those without (`units`, with the types of their reserved
/// fields in brackets).
macro_rules! methods {
    (
        structs { $($s:ident = $sc:literal, $sm:literal, $sn:literal;)* }
        units { $($u:ident = $uc:literal, $um:literal, $un:literal [$($ur:ty),*];)* }
    ) => {
        /// Every method of AMQP 0-9-1 as RabbitMQ speaks it.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Method {
            $($s($s),)*
            $($u,)*
        }

        impl Method {
            pub fn class_id(&self) -> u16 {
                match self {
                    $(Method::$s(_) => $sc,)*
                    $(Method::$u => $uc,)*
                }
            }

            pub fn method_id(&self) -> u16 {
                match self {
                    $(Method::$s(_) => $sm,)*
                    $(Method::$u => $um,)*
                }
            }

            /// The spec's name, e.g. `"basic.publish"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Method::$s(_) => $sn,)*
                    $(Method::$u => $un,)*
                }
            }

            /// The name of the method with these ids, if there is one.
            pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {
                match (class_id, method_id) {
                    $(($sc, $sm) => Some($sn),)*
                    $(($uc, $um) => Some($un),)*
                    _ => None,
                }
            }

            /// Decodes a method frame's payload: class id, method id,
            /// arguments. Strings and tables are slices of `payload`.
            pub fn decode(payload: &Bytes) -> Result<Method, DecodeError> {
                let mut r = Reader::new(payload);
                let (class_id, method_id) = r.run((be_u16, be_u16))?;
                let method = match (class_id, method_id) {
                    $(($sc, $sm) => Method::$s($s::read_args(&mut r)?),)*
                    $(($uc, $um) => {
                        $(let _: $ur = Wire::read(&mut r)?;)*
                        Method::$u
                    })*
                    _ => return Err(DecodeError::UnknownMethod { class_id, method_id }),
                };
                r.finish()?;
                Ok(method)
            }

            /// Writes class id, method id and arguments.
            pub fn encode(&self, buf: &mut BytesMut) {
                buf.put_u16(self.class_id());
                buf.put_u16(self.method_id());
                let mut w = Writer::new(buf);
                match self {
                    $(Method::$s(m) => m.write_args(&mut w),)*
                    $(Method::$u => {
                        $(<$ur as Wire>::write(&<$ur as Default>::default(), &mut w);)*
                    })*
                }
            }
        }

        $(
            impl From<$s> for Method {
                fn from(m: $s) -> Method {
                    Method::$s(m)
                }
            }
        )*
    };
}
