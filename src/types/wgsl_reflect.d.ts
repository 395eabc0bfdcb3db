// wgsl_reflect's package "main" is a CommonJS file inside a "type": "module" package, which Node
// cannot load; its ESM build is imported by path instead and typed from the package's own types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
